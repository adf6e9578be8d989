"""What workflows take from the verification module: checks (agent.checks) and OCR (perception.ocr).

A workflow's ``check`` step uses the one check syntax of ``deskpilot.agent.checks``
(file, xlsx_cell, pdf_contains, text_visible, window_title, expect, ...);
``wait_for_text`` and ``click_text`` use ``deskpilot.perception.ocr``; the element
steps (click, fill, wait_for) use the desk's locators. This
module is the small interface the runner needs from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from deskpilot.errors import UsageError


@dataclass
class Outcome:
    passed: bool
    label: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def validate_check(obj: Any) -> None:
    """ValueError with a one-line message when ``obj`` is not a check (for pydantic validators)."""
    from deskpilot.agent.checks import parse_check

    try:
        parse_check(obj)
    except UsageError as err:
        raise ValueError(str(err)) from None


def check_context(*, base_dir: Path, desk=None, out_dir: Path | None = None, ask=None, prefix: str = "check",
                  shares: Sequence[str] = (), since_ns: int | None = None, existed: set[str] | None = None):
    """What a check step's checks share: files below ``base_dir`` and, when there is one, the desktop.

    ``shares``: folders whose links are never followed; ``since_ns``/``existed``: the workflow's start and
    the checked files there then (modified_during_run).
    """
    from deskpilot.agent.checks import CheckContext
    from deskpilot.agent.checks.runner import FILE_WAIT_S

    return CheckContext(base_dir=base_dir, screen=(desk.observe if desk is not None else None),
                        sandbox=desk.sandbox if desk is not None else None, ask=ask, out_dir=out_dir, prefix=prefix,
                        shares=list(shares), run_started_ns=since_ns, existed=existed, file_wait_s=FILE_WAIT_S)


def run_check(obj: dict[str, Any], ctx) -> tuple[Outcome, Any]:
    """One check in ``ctx`` (one frame and one OCR read for all checks of a step): its outcome and result."""
    from deskpilot.agent.checks import run_check as run_one

    result = run_one(obj, ctx)
    return Outcome(result.passed, result.label, result.message, dict(result.evidence)), result


def save_failure(out_dir: Path, stem: str, *, screen=None, error: Exception | None = None, ctx=None,
                 results=(), redact=None):
    """The screen and text of a failed step, saved once for every kind of step (agent.checks.evidence)."""
    from deskpilot.agent.checks.evidence import ocr_lines_of, save_check_failure, save_failure_evidence

    if ctx is not None:
        return save_check_failure(ctx, results, out_dir, stem, redact=redact)
    frame = getattr(error, "screen", None)
    return save_failure_evidence(out_dir, stem, screen=frame if frame is not None else screen,
                                 lines=ocr_lines_of(getattr(error, "evidence", None)), redact=redact)


def wait_for_text(desk, text: str, timeout: float, region=None) -> str:
    """Wait until OCR reads ``text`` on screen; CheckFailed after ``timeout``. Returns where."""
    from deskpilot.perception import ocr

    found = ocr.wait_for_text(desk, text, timeout=timeout, region=region)
    return f"{text!r} at {list(found[0].box)}"


def click_text(desk, text: str, timeout: float, index: int, region=None) -> str:
    """Click the middle of the ``index``-th place OCR reads ``text``."""
    from deskpilot.perception import ocr

    target = ocr.click_text(desk, text, timeout=timeout, index=index, region=region)
    return f"clicked {text!r} at {list(target.center)}"


def _locator(desk, element, values: dict[str, str], *, by_text: bool = True):
    """A desk locator for a workflow's element (its strings with {vars} filled in).

    ``by_text=False`` for a fill, whose ``text`` is what it types, not what it looks for.
    """
    from deskpilot.agent.desk.locator import Locator, role_query
    from deskpilot.perception.a11y import Query
    from deskpilot.workflow.variables import substitute

    def sub(value):
        return substitute(value, values) if isinstance(value, str) else value

    role, name, label = sub(element.role), sub(element.name), sub(element.label)
    text = sub(element.text) if by_text else None
    if role is None and name is None and label is None and text is None:
        raise UsageError("an element step names its element: role, name, text or label")
    query = role_query(role, name, element.exact) if role else Query(name=name, exact=element.exact)
    query = query.model_copy(update={"text": text, "label": label})
    found = Locator(desk, query)
    return found.nth(element.index) if element.index is not None else found


def click_element(desk, element, values: dict[str, str], timeout: float) -> str:
    node = _locator(desk, element, values).click(timeout=timeout)
    return f"clicked {node.describe()} at {list(node.center)}"


def fill_element(desk, element, values: dict[str, str], timeout: float) -> str:
    from deskpilot.workflow.variables import substitute

    node = _locator(desk, element, values, by_text=False).fill(substitute(element.text, values), timeout=timeout)
    return f"filled {node.describe()}"


def wait_for_element(desk, element, values: dict[str, str], state: str, timeout: float) -> str:
    node = _locator(desk, element, values).wait_for(state, timeout=timeout)  # type: ignore[arg-type]
    return f"{node.describe()} is {state}" if node is not None else f"element is {state}"
