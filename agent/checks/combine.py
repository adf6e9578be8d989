"""One of several checks: ``{any_of: [check, check, ...]}`` passes when any of them passes.

For OSWorld tasks whose evaluator joins its metrics with ``conj: or``; a list
of checks is already "all of them". Every alternative runs (its outcome is in
the evidence), so a failure shows why each one failed.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from deskpilot.agent.checks import models as m

Outcome = tuple[bool, str, dict[str, Any]]


class AnyOf(m._Check):
    kind = "any_of"
    any_of: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("any_of")
    @classmethod
    def _checks(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in value:
            m.parse_check(item)  # a ConfigError is a ValueError: reported with the field
        return value

    def describe(self) -> str:
        return f"any of {len(self.any_of)} checks"

    def _required(self) -> dict[str, Any]:
        return {"any_of": self.any_of}


def any_of(check: AnyOf, ctx) -> Outcome:
    from dataclasses import replace

    from deskpilot.agent.checks.runner import run_check

    quiet = replace(ctx, record=None)  # the alternatives are evidence of this check, not checks of the run
    results = [run_check(item, quiet) for item in check.any_of]
    evidence = {"alternatives": [r.model_dump(mode="json", include={"label", "passed", "message"}) for r in results]}
    for r in results:
        if r.passed:
            return True, f"{r.label}: {r.message}", evidence
    return False, "none passed: " + "; ".join(f"{r.label}: {r.message}" for r in results), evidence
