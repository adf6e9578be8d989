"""What an evaluation leaves in its --out folder: results.jsonl, summary.json, index.html.

results.jsonl is the source of truth (one fsynced line per finished attempt,
so an interrupted evaluation keeps what finished and `--resume` knows what to
skip); summary.json and index.html are rebuilt from it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from statistics import mean
from typing import Any

import jinja2
from deskpilot.eval.checks import CheckResult
from pydantic import BaseModel, Field, ValidationError

RESULTS, SUMMARY, INDEX = "results.jsonl", "summary.json", "index.html"
SKIPPED = "SKIPPED"  # an attempt's status when its task cannot run here (the reason says why)


class AttemptResult(BaseModel):
    """One attempt of one task (a task runs --repeat times)."""

    id: str
    attempt: int
    status: str  # the run's end status (DONE, FAIL, MAX_STEPS, STOPPED, ERROR; PASSED/FAILED; SKIPPED)
    passed: bool  # DONE and every check passed
    checks_passed: int = 0
    checks_total: int = 0
    checks: list[CheckResult] = Field(default_factory=list)
    reason: str = ""
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_tokens: int = 0  # sent (agent.loop.tokens): exact
    image_tokens_default: int = 0  # the same steps without --image-budget / --history-images
    prompt_tokens_est: int = 0  # estimated (text at 4 characters per token)
    prefix_tokens_est: int = 0  # repeated from the previous step's prompt: a prefix cache can reuse it
    model_s: float = 0.0
    wall_s: float = 0.0
    desk_s: float = 0.0  # waiting for a ready desktop
    step_ms: list[float] = Field(default_factory=list)  # wall time of each step
    tags: list[str] = Field(default_factory=list)
    run_dir: str = ""  # relative to the --out folder
    tries: int = 1  # executions (more than 1: retried after a lost Ray worker)
    desk_start_failures: int = 0  # desks whose display or window manager failed to start: retried, not the task's fault
    desk_start_errors: list[str] = Field(default_factory=list)  # their reasons (logs: RUN/desk-start-failures/)
    worker: str = ""


def append_result(out: Path, result: AttemptResult) -> None:
    with open(out / RESULTS, "a", encoding="utf-8") as f:
        f.write(result.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_results(out: Path) -> list[AttemptResult]:
    """Every complete line (a torn last line from a kill is skipped)."""
    path = out / RESULTS
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            found.append(AttemptResult.model_validate_json(line))
        except ValidationError:
            continue
    return found


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n attempts with c passes (the Codex paper's estimator)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 1)


def summarize(results: list[AttemptResult], *, suite: str = "", repeat: int = 1, planned: int | None = None,
              interrupted: bool = False, wall_s: float | None = None) -> dict[str, Any]:
    """The numbers of an evaluation. SKIPPED attempts (a task needing what is not implemented) are
    listed by reason and counted in neither the passes nor the rates."""
    skipped = [r for r in results if r.status == SKIPPED]
    results = [r for r in results if r.status != SKIPPED]
    by_reason: dict[str, list[str]] = {}
    for r in skipped:
        by_reason.setdefault(r.reason, [])
        if r.id not in by_reason[r.reason]:
            by_reason[r.reason].append(r.id)
    by_task: dict[str, list[AttemptResult]] = {}
    tags: dict[str, list[AttemptResult]] = {}
    for r in results:
        by_task.setdefault(r.id, []).append(r)
        for tag in r.tags:
            tags.setdefault(tag, []).append(r)
    steps = [ms for r in results for ms in r.step_ms]
    ks = [k for k in (1, 2, 5, 10) if k <= repeat] + ([repeat] if repeat not in (1, 2, 5, 10) else [])
    passk = {}
    for k in ks:
        eligible = [rs for rs in by_task.values() if len(rs) >= k]
        if eligible:
            passk[f"pass@{k}"] = round(mean(pass_at_k(len(rs), sum(r.passed for r in rs), k) for rs in eligible), 4)
    def rate(rs: list) -> float | None:
        return round(sum(r.passed for r in rs) / len(rs), 4) if rs else None

    return {
        "suite": suite,
        "attempts": len(results),
        "planned": planned if planned is not None else len(results) + len(skipped),
        "skipped": len(skipped),
        "skipped_by_reason": {k: sorted(v) for k, v in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))},
        "interrupted": interrupted,
        "tasks": len(by_task),
        "passed": sum(r.passed for r in results),
        "success_rate": rate(results),
        "by_tag": {t: {"attempts": len(rs), "passed": sum(r.passed for r in rs), "success_rate": rate(rs)}
                   for t, rs in sorted(tags.items())},
        "by_status": {s: sum(r.status == s for r in results) for s in sorted({r.status for r in results})},
        **passk,
        "mean_steps": round(mean(r.steps for r in results), 2) if results else None,
        "step_latency_ms": {"p50": _pct(steps, 0.5), "p90": _pct(steps, 0.9), "count": len(steps)},
        "tokens": {"prompt": sum(r.prompt_tokens for r in results),
                   "completion": sum(r.completion_tokens for r in results),
                   **_image_tokens(results)},
        "model_s": round(sum(r.model_s for r in results), 2),
        "retried": [f"{r.id}~{r.attempt}" for r in results if r.tries > 1],
        "desk_start_failures": {"count": sum(r.desk_start_failures for r in results),
                                "attempts": [f"{r.id}~{r.attempt}" for r in results if r.desk_start_failures]},
        "wall_s": wall_s,
    }


def _image_tokens(results: list) -> dict[str, Any]:
    """Image tokens sent, what they would have been unbudgeted, and the reusable-prefix share."""
    sent, default = sum(r.image_tokens for r in results), sum(r.image_tokens_default for r in results)
    prompt, prefix = sum(r.prompt_tokens_est for r in results), sum(r.prefix_tokens_est for r in results)
    return {"image": sent, "image_unbudgeted": default,
            "image_savings_pct": round(100 * (1 - sent / default), 1) if default else None,
            "prompt_est": prompt, "reusable_prefix_share": round(prefix / prompt, 3) if prompt else None}


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("deskpilot.eval", "templates"), autoescape=True)


def write_index(out: Path, results: list[AttemptResult], summary: dict[str, Any]) -> Path:
    """index.html: the summary and a table linking every attempt's report."""
    rows = sorted(results, key=lambda r: (r.id, r.attempt))
    html = _ENV.get_template("index.html.j2").render(summary=summary, rows=rows)
    path = out / INDEX
    path.write_text(html, encoding="utf-8")
    return path
