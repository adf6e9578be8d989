"""Running checks: each gives a typed result with evidence, none stops the others."""

from __future__ import annotations

import time
from typing import Any, Iterable

from pydantic import BaseModel, Field

from deskpilot.agent.checks import files, screen
from deskpilot.agent.checks.context import CheckContext
from deskpilot.agent.checks.models import AnyOf, _FileCheck, parse_check
from deskpilot.errors import DeskpilotError


class CheckResult(BaseModel):
    """One check's outcome: what was checked, whether it held, and what was seen."""

    kind: str
    label: str
    check: dict[str, Any]
    passed: bool
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    ms: float = 0.0

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.label}: {self.message}"


def _file_check(check: _FileCheck, ctx: CheckContext) -> tuple[bool, str, dict[str, Any]]:
    """A file check, read again until it holds or ``ctx.file_wait_s`` has passed.

    Apps save asynchronously: LibreOffice's Ctrl+S redraws the screen (which
    is what the loop waits for) before the file is written, so a check made
    at once can read the old file. A check that holds returns at once.
    """
    deadline = time.monotonic() + ctx.file_wait_s
    while True:
        passed, message, evidence = files.evaluate(check, ctx.base_dir, ctx.share_roots(),
                                                   since_ns=ctx.run_started_ns, existed=ctx.existed)
        if passed or time.monotonic() >= deadline:
            return passed, message, evidence
        time.sleep(0.1)


def run_check(check: Any, ctx: CheckContext) -> CheckResult:
    check = parse_check(check)
    started = time.perf_counter()
    try:
        if isinstance(check, _FileCheck):
            passed, message, evidence = _file_check(check, ctx)
        elif isinstance(check, AnyOf):
            passed, message, evidence = any_of(check, ctx)
        else:
            passed, message, evidence = screen.EVALUATORS[check.kind](check, ctx)
    except (DeskpilotError, OSError, ValueError) as err:  # a broken file or a missing extra fails the check
        passed, message, evidence = False, str(err) or type(err).__name__, {"error": type(err).__name__}
    result = CheckResult(kind=check.kind, label=check.label(), check=check.spec(), passed=bool(passed),
                         message=message, evidence=evidence, ms=round((time.perf_counter() - started) * 1000, 1))
    if ctx.record is not None:
        ctx.record(result)
    return result


def any_of(check: AnyOf, ctx: CheckContext) -> tuple[bool, str, dict[str, Any]]:
    """``{any_of: [...]}``: passes when one alternative passes; each one's outcome is in the evidence."""
    from dataclasses import replace

    quiet = replace(ctx, record=None)  # the alternatives are evidence of this check, not checks of the run
    results = [run_check(item, quiet) for item in check.any_of]
    evidence = {"alternatives": [r.model_dump(mode="json", include={"label", "passed", "message"}) for r in results]}
    for r in results:
        if r.passed:
            return True, f"{r.label}: {r.message}", evidence
    return False, "none passed: " + "; ".join(f"{r.label}: {r.message}" for r in results), evidence


def run_checks(checks: Iterable[Any], ctx: CheckContext) -> list[CheckResult]:
    """Run every check (all of them, even after a failure) on the same settled screen."""
    results = []
    for n, check in enumerate(checks, 1):
        ctx.index = n
        results.append(run_check(check, ctx))
    return results


def failure_summary(results: list[CheckResult]) -> str:
    """'' if all passed, else one line naming each failed check and why."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return ""
    head = f"{len(failed)} of {len(results)} check(s) failed: "
    return head + "; ".join(f"{r.label}: {r.message}" for r in failed)


FILE_WAIT_S = 5.0  # after DONE, how long a file check may wait for the app to finish writing


def verify_run(agent) -> tuple[Any, str]:
    """After the model said DONE: run the agent's checks on the settled screen -> (PASSED|FAILED, reason).

    Each result is written to the trajectory as a ``check`` record before the
    end record; diff images go into the run folder. An agent may carry a
    ``before_checks`` callable (set by its owner): it runs first, on the live
    desk (an OSWorld task's postconfig presses ctrl+s there).
    """
    from deskpilot.agent.records.models import CheckRecord, Status
    from deskpilot.agent.desk.screens import settle_blocking
    from deskpilot.agent.records.trajectory import now_iso

    def settled():
        return settle_blocking(agent._grab, first_delay=0.0, interval=0.05, cap=2.0)[0].image

    def record(result: CheckResult) -> None:
        dump = result.model_dump(mode="json")
        agent.trajectory.append(CheckRecord(time=now_iso(), index=len(agent.check_results) + 1,
                                            check_kind=dump.pop("kind"), **dump))
        agent.check_results.append(result)

    prepare = getattr(agent, "before_checks", None)  # e.g. an OSWorld task's postconfig (save the file)
    if prepare is not None:
        try:
            prepare()
        except (DeskpilotError, OSError) as err:
            return Status.FAILED, f"before the checks: {err}"
    ctx = CheckContext(base_dir=agent.check_base, screen=settled, sandbox=agent.sandbox,
                       ask=agent.ask if agent.backend is not None else None, out_dir=agent.run_dir, record=record,
                       shares=list(getattr(agent, "check_shares", [])),
                       run_started_ns=getattr(agent, "files_started_ns", None),
                       existed=getattr(agent, "files_before", None), file_wait_s=FILE_WAIT_S)
    summary = failure_summary(run_checks(agent.checks, ctx))
    return (Status.FAILED, summary) if summary else (Status.PASSED, "")
