"""The two things workflows take from the verification work (issue 10): checks and OCR.

Workflows only need a small interface: ``validate_check(obj)``,
``run_check(obj, ...) -> Outcome``, ``wait_for_text`` and ``click_text``.
When ``deskpilot.agent.checks`` and ``deskpilot.perception.ocr`` are present
they do the work; until then small stand-ins do (``_basic_checks``: exists,
contains, xlsx_cell, pdf_contains; ``_basic_ocr``: RapidOCR line matching).
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


def wait_for_text(desk, text: str, timeout: float, region=None) -> str:
    """Wait until OCR reads ``text`` on screen; CheckFailed after ``timeout``. Returns where."""
    if _have("deskpilot.perception.ocr"):
        from deskpilot.perception import ocr

        found = ocr.wait_for_text(desk, text, timeout=timeout, region=region)
        return f"{text!r} at {list(found[0].box)}"
    from deskpilot.agent.workflow import _basic_ocr

    return f"{text!r} at {list(_basic_ocr.find(desk, text, timeout, region)[0][1])}"


def click_text(desk, text: str, timeout: float, index: int, region=None) -> str:
    """Click the middle of the ``index``-th place OCR reads ``text`` (whole OCR line in the stand-in)."""
    if _have("deskpilot.perception.ocr"):
        from deskpilot.perception import ocr

        target = ocr.click_text(desk, text, timeout=timeout, index=index, region=region)
        return f"clicked {text!r} at {list(target.center)}"
    from deskpilot.agent.workflow import _basic_ocr

    found = _basic_ocr.find(desk, text, timeout, region)
    if index >= len(found):
        raise CheckFailed(f"text {text!r} is on screen {len(found)} time(s); no match number {index + 1}")
    x1, y1, x2, y2 = found[index][1]
    desk.click((x1 + x2) // 2, (y1 + y2) // 2)
    return f"clicked {text!r} at {[(x1 + x2) // 2, (y1 + y2) // 2]}"


__all__ = ["CheckFailed", "Outcome", "click_text", "run_check", "validate_check", "wait_for_text"]
