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
    try:
        from deskpilot.agent import checks  # the verification package, once merged
    except ImportError:
        return None
    return checks if hasattr(checks, "run_check") else None


def validate_check(check: Any) -> None:
    """Raise ValueError (one line) unless `check` is a check this module can run."""
    if not isinstance(check, dict) or not check:
        raise ValueError("a check is a mapping, e.g. {file: out.txt, contains: 'Total'}")
    ext = _external()
    if ext is not None and hasattr(ext, "validate_check"):
        ext.validate_check(check)
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


def run_checks(desk, checks: list[dict[str, Any]]) -> list[CheckResult]:
    """Evaluate each check on the desk (files through its share copies); never raises for a failed check."""
    ext = _external()
    results = []
    for check in checks:
        try:
            if ext is not None:
                passed, detail = ext.run_check(desk, check)
            elif "file" in check:
                passed, detail = _file(check, desk.host_path(check["file"]))
            else:
                passed, detail = _window(desk, str(check["window_title"]))
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
