"""Failure evidence: the screen at the moment something failed, and what was read from it.

One place for every door (workflow steps, the pytest plugin), so a failed
``click_text``, ``wait_for_*``, ``expect_text`` or check always leaves the same
files behind and names them: ``STEM.png`` (the frame the failure was seen on,
or else the screen right now) and, when text was read, ``STEM_ocr.txt`` (one
line per OCR line with its pixel box). Diff images a screenshot check wrote
are named alongside. Saving never raises: a desktop that is already gone is
noted, and the failure itself is what gets reported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import BaseModel, Field

from deskpilot.agent.checks.context import CheckContext


class FailureEvidence(BaseModel):
    """The files one failure left behind (absolute paths), for messages and reports."""

    screenshot: str | None = None
    ocr_text: str | None = None
    diffs: list[str] = Field(default_factory=list)
    problem: str | None = None  # why the screen could not be saved, if it could not

    def files(self) -> dict[str, str]:
        """Name -> path of every file, in the order a reader wants them (junit properties use these names)."""
        named = {"screenshot": self.screenshot, "ocr_text": self.ocr_text}
        named.update({("diff" if i == 0 else f"diff_{i + 1}"): d for i, d in enumerate(self.diffs)})
        return {k: v for k, v in named.items() if v}

    def describe(self) -> str:
        """Lines to append to a failure message: '  screenshot: PATH' and so on."""
        lines = [f"  {name.replace('_', ' ')}: {path}" for name, path in self.files().items()]
        if self.problem:
            lines.append(f"  (no screenshot: {self.problem})")
        return "\n".join(lines)


def _frame(screen: Any):
    """A PIL image from an image, an Observation, a grab callable, or a desktop with screenshot()."""
    from deskpilot.perception.ocr import frame_of

    return frame_of(screen() if callable(screen) else screen)


def _line(item: Any) -> str:
    if isinstance(item, str):
        return item
    data = item.model_dump() if hasattr(item, "model_dump") else dict(item)
    return f"{list(data.get('box', []))}\t{data.get('text', '')}"


def ocr_lines_of(evidence: Any) -> list[Any] | None:
    """The OCR lines an OCR failure carries as its evidence (a list of TextBox dicts), else None."""
    if isinstance(evidence, list) and all(isinstance(e, dict) and "text" in e and "box" in e for e in evidence):
        return evidence
    return None


def save_failure_evidence(out_dir: str | Path, stem: str, *, screen: Any = None, lines: Iterable[Any] | None = None,
                          diffs: Iterable[str] = (), redact: Callable[[str], str] | None = None) -> FailureEvidence:
    """Write the screen (and the text read from it) of one failure into ``out_dir``; what was written.

    ``screen`` is the frame of the failure, or something to take one from (a
    desktop, a grab callable); ``lines`` the OCR lines read from it (TextBox,
    their dicts, or plain strings); ``diffs`` paths of diff images already saved;
    ``redact`` hides secrets in the text file (a secret shown on screen stays in
    the picture, as in every screenshot of a run).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "failure"
    evidence = FailureEvidence(diffs=[str(d) for d in diffs if d])
    if screen is not None:
        try:
            path = out / f"{name}.png"
            _frame(screen).convert("RGB").save(path)
            evidence.screenshot = str(path)
        except Exception as err:  # the failure being reported matters more than its picture
            evidence.problem = f"{type(err).__name__}: {err}"
    if lines is not None:
        path = out / f"{name}_ocr.txt"
        text = "\n".join(_line(item) for item in lines)
        text = redact(text) if redact is not None else text
        path.write_text((text + "\n") if text else "(OCR read no text)\n", encoding="utf-8")
        evidence.ocr_text = str(path)
    return evidence


def save_check_failure(ctx: CheckContext, results: Iterable[Any], out_dir: str | Path, stem: str,
                       redact: Callable[[str], str] | None = None) -> FailureEvidence:
    """Evidence for failed checks: the frame they were run on, the OCR lines they read, their diff images.

    A check run with no frame taken yet (a file check) saves the screen now, when
    the context has a screen at all.
    """
    frame = ctx._frame if ctx._frame is not None else ctx.screen
    lines = None
    if ctx._lines:
        lines = ctx._lines.get(None) if None in ctx._lines else [t for part in ctx._lines.values() for t in part]
    diffs = [r.evidence["diff"] for r in results if not r.passed and isinstance(r.evidence.get("diff"), str)]
    return save_failure_evidence(out_dir, stem, screen=frame, lines=lines, diffs=diffs, redact=redact)


__all__ = ["FailureEvidence", "ocr_lines_of", "save_check_failure", "save_failure_evidence"]
