"""Literal comparisons of a file's text: OSWorld's ``exact_match`` and ``check_include_exclude``.

    {file: out.txt, exact_match: "Hello"}                       the whole text, exactly
    {file: out.txt, include_exclude: {include: [a, b], exclude: [c]}}

OSWorld applies them to a string a getter produced; here the string is a
file's text (an OSWorld task's ``vm_file`` result). One trailing newline is
not part of the text (a file written by ``echo``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deskpilot.agent.checks import base as m

Outcome = tuple[bool, str, dict[str, Any]]


class ExactMatch(m._FileCheck):
    kind = "file_exact_match"
    exact_match: str

    def describe(self) -> str:
        return f"file {self.file} is exactly {m._short(self.exact_match)}"


class IncludeExclude(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class FileIncludeExclude(m._FileCheck):
    kind = "file_include_exclude"
    include_exclude: IncludeExclude

    def describe(self) -> str:
        ie = self.include_exclude
        return f"file {self.file} has {len(ie.include)} text(s) and none of {len(ie.exclude)}"


def _text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\n") else text


def exact_match(check: ExactMatch, path: Path, data: bytes, base: Path) -> Outcome:
    text = _text(data)
    evidence = {"path": str(path), "actual": text[:300]}
    if text == check.exact_match:
        return True, f"{path.name} is {m._short(text)}", evidence
    return False, f"{path.name} is {m._short(text)}, expected {m._short(check.exact_match)}", evidence


def include_exclude(check: FileIncludeExclude, path: Path, data: bytes, base: Path) -> Outcome:
    text = _text(data)
    missing = [s for s in check.include_exclude.include if s not in text]
    present = [s for s in check.include_exclude.exclude if s in text]
    evidence = {"path": str(path), "missing": missing, "present": present, "excerpt": text[:300]}
    if not missing and not present:
        return True, f"{path.name} has every included text and no excluded one", evidence
    parts = ([f"missing {missing}"] if missing else []) + ([f"has excluded {present}"] if present else [])
    return False, f"{path.name}: " + "; ".join(parts), evidence
