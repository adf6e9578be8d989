"""A suite task's checks: the project's one check syntax (deskpilot.agent.checks), per attempt.

The Agent runs them after the model says DONE, on the settled screen, records
each in the trajectory and ends the run PASSED or FAILED. What the eval adds:
validation at suite-load time (with the suite file's line) and file paths
pointed at the attempt's private copy of its shared folders.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class CheckResult(BaseModel):
    """One check of one attempt, as results.jsonl and index.html show it."""

    check: dict[str, Any]
    passed: bool
    detail: str = ""


def validate_check(check: Any) -> None:
    """Raise ConfigError (a ValueError: pydantic reports it with the suite's line) unless `check` is a check."""
    from deskpilot.agent.checks import parse_check

    parse_check(check)


def for_desk(desk, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks with `file` paths inside a share moved to the desk's copy of that share (in any_of too)."""
    def moved(c: dict[str, Any]) -> dict[str, Any]:
        return {k: (str(desk.host_path(v)) if k == "file" else for_desk(desk, v) if k == "any_of" else v)
                for k, v in c.items()}

    return [moved(c) for c in checks]


def results_of(checks: list[dict[str, Any]], run_checks: list[dict[str, Any]]) -> list[CheckResult]:
    """The Agent's check results (RunResult.checks) next to the checks as the suite wrote them."""
    return [CheckResult(check=orig, passed=bool(r.get("passed")), detail=f"{r.get('label')}: {r.get('message')}")
            for orig, r in zip(checks, run_checks)]
