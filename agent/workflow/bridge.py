"""The two things workflows take from the verification work (issue 10): checks and OCR.

Workflows only need a small interface: ``validate_check(obj)``,
``run_check(obj, ...) -> Outcome``, ``wait_for_text`` and ``click_text``.
When ``deskpilot.agent.checks`` and ``deskpilot.perception.ocr`` are present
they do the work; until then a minimal set of file checks stands in
(``_basic_checks``: exists, contains, xlsx_cell, pdf_contains), and the OCR
steps say what is missing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskpilot.errors import CheckFailed, UsageError


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@dataclass
class Outcome:
    passed: bool
    label: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def validate_check(obj: Any) -> None:
    """ValueError with a one-line message when ``obj`` is not a check."""
    if _have("deskpilot.agent.checks"):
        from deskpilot.agent.checks import parse_check

        try:
            parse_check(obj)
        except UsageError as err:
            raise ValueError(str(err)) from None
        return
    from deskpilot.agent.workflow import _basic_checks

    _basic_checks.validate(obj)


def run_check(obj: dict[str, Any], *, base_dir: Path, desk=None, out_dir: Path | None = None,
              ask=None, prefix: str = "check") -> Outcome:
    if _have("deskpilot.agent.checks"):
        from deskpilot.agent.checks import CheckContext
        from deskpilot.agent.checks import run_check as run_one

        ctx = CheckContext(base_dir=base_dir, screen=(desk.observe if desk is not None else None),
                           sandbox=desk, ask=ask, out_dir=out_dir, prefix=prefix)
        result = run_one(obj, ctx)
        return Outcome(result.passed, result.label, result.message, dict(result.evidence))
    from deskpilot.agent.workflow import _basic_checks

    passed, label, message = _basic_checks.run(obj, base_dir)
    return Outcome(passed, label, message)


def _ocr():
    if not _have("deskpilot.perception.ocr"):
        raise UsageError("click_text and wait_for_text need the OCR module (deskpilot.perception.ocr) "
                         "and the [ocr] extra")
    from deskpilot.perception import ocr

    return ocr


def wait_for_text(desk, text: str, timeout: float) -> str:
    """Wait until OCR reads ``text`` on screen; CheckFailed after ``timeout``. Returns where."""
    found = _ocr().wait_for_text(desk, text, timeout=timeout)
    return f"{text!r} at {list(found[0].box)}"


def click_text(desk, text: str, timeout: float, index: int) -> str:
    target = _ocr().click_text(desk, text, timeout=timeout, index=index)
    return f"clicked {text!r} at {list(target.center)}"


__all__ = ["CheckFailed", "Outcome", "click_text", "run_check", "validate_check", "wait_for_text"]
