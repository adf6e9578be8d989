"""Checks of a suite task: outcomes verified outside the model, after the run, on the live desk.

The check syntax is the project's one syntax (the verification work in
``deskpilot.agent.checks``); when that package is present it does the work.
Until then this module validates and evaluates the subset an eval suite needs
most, written the same way:

    {file: PATH, exists: true}      {file: PATH, contains: TEXT}     {file: PATH, regex: RE}
    {file: PATH, json: {path: "a.b[0]", equals: V}}                   {window_title: TEXT}
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

_FILE_TESTS = ("exists", "contains", "regex", "json")
KINDS = ("file", "window_title")


class CheckResult(BaseModel):
    check: dict[str, Any]
    passed: bool
    detail: str = ""


def _external():
    """The project's checks package (agent/checks), when present: it then validates and runs every check."""
    try:
        from deskpilot.agent import checks
    except ImportError:
        return None
    return checks if all(hasattr(checks, n) for n in ("CheckContext", "parse_check", "run_checks")) else None


def validate_check(check: Any) -> None:
    """Raise ValueError (one line) unless `check` is a check this module can run."""
    if not isinstance(check, dict) or not check:
        raise ValueError("a check is a mapping, e.g. {file: out.txt, contains: 'Total'}")
    ext = _external()
    if ext is not None:
        ext.parse_check(check)  # its ConfigError is a ValueError: pydantic reports it with the line
        return
    if "file" in check:
        tests = [k for k in check if k != "file"]
        if len(tests) != 1 or tests[0] not in _FILE_TESTS:
            raise ValueError(f"a file check has one of {', '.join(_FILE_TESTS)} (got {', '.join(tests) or 'none'})")
        if tests[0] == "regex":
            try:
                re.compile(str(check["regex"]))
            except re.error as err:
                raise ValueError(f"bad regex: {err}") from None
        if tests[0] == "json" and not (isinstance(check["json"], dict) and {"path", "equals"} <= set(check["json"])):
            raise ValueError("a json check is {path: 'a.b[0]', equals: VALUE}")
        return
    if set(check) == {"window_title"}:
        return
    raise ValueError(f"unknown check {sorted(check)}: use one of {', '.join(KINDS)}")


def _json_at(data: Any, path: str) -> Any:
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        data = data[int(index)] if index else data[name]
    return data


def _file(check: dict[str, Any], path: Path) -> tuple[bool, str]:
    if "exists" in check:
        want = bool(check["exists"])
        return path.exists() == want, f"{path} {'exists' if path.exists() else 'does not exist'}"
    if not path.is_file():
        return False, f"{path} does not exist"
    text = path.read_text(encoding="utf-8", errors="replace")
    if "contains" in check:
        found = str(check["contains"]) in text
        return found, f"{path} {'contains' if found else 'does not contain'} {check['contains']!r}"
    if "regex" in check:
        m = re.search(str(check["regex"]), text, re.MULTILINE)
        return m is not None, (f"{path} matches at {m.group(0)!r}" if m else f"{path} has no match for {check['regex']!r}")
    spec = check["json"]
    try:
        value = _json_at(json.loads(text), str(spec["path"]))
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as err:
        return False, f"{path}: no value at {spec['path']!r} ({err.__class__.__name__})"
    return value == spec["equals"], f"{path} {spec['path']} = {value!r} (want {spec['equals']!r})"


def run_checks(desk, checks: list[dict[str, Any]], out_dir: Path | None = None) -> list[CheckResult]:
    """Evaluate each check on the desk (files through its share copies); never raises for a failed check."""
    mapped = [{k: (str(desk.host_path(v)) if k == "file" else v) for k, v in c.items()} for c in checks]
    ext = _external()
    if ext is not None:
        ctx = ext.CheckContext(screen=desk.capturer.grab, sandbox=desk.sandbox, out_dir=out_dir)
        return [CheckResult(check=orig, passed=r.passed, detail=f"{r.label}: {r.message}")
                for orig, r in zip(checks, ext.run_checks(mapped, ctx))]
    results = []
    for check, target in zip(checks, mapped):
        try:
            if "file" in target:
                passed, detail = _file(target, Path(target["file"]))
            else:
                passed, detail = _window(desk, str(target["window_title"]))
        except Exception as err:  # a check that cannot run is a failed check, with why
            passed, detail = False, f"check could not run: {err}"
        results.append(CheckResult(check=check, passed=bool(passed), detail=detail))
    return results


def _window(desk, title: str) -> tuple[bool, str]:
    from deskpilot.errors import SandboxError

    try:
        desk.sandbox.wait_for_window(title, timeout=2.0)
    except SandboxError:
        return False, f"no window titled {title!r}"
    return True, f"a window titled {title!r} is open"
