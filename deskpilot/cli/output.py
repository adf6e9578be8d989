"""What `run` and `demo` print: the result for scripts on stdout, everything else on stderr.

stdout gets exactly one thing: the result line, or with `--json` one JSON
object, so `deskpilot run ... | tail -1` and `--json | jq .status` work. Exit
codes tell the outcomes apart without parsing anything:

    0  DONE, or PASSED (DONE and every check passed)
    1  FAIL, FAILED (a check failed), MAX_STEPS or STOPPED (the task was not done)
    2  usage or set-up error, or another ERROR (an action failed, a server error)
    3  the model's replies never parsed (ERROR: wrong model, dialect or prompt?)
    4  the model server is unreachable or refused us (ERROR: URL, key, model name)
    130 interrupted (Ctrl-C or SIGTERM); the run still ends with a report
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.text import Text

EXIT_DONE, EXIT_NOT_DONE, EXIT_ERROR, EXIT_UNPARSED, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_NEEDS_USER = 5
_BY_STATUS = {"DONE": EXIT_DONE, "PASSED": EXIT_DONE, "FAIL": EXIT_NOT_DONE, "FAILED": EXIT_NOT_DONE,
              "MAX_STEPS": EXIT_NOT_DONE, "STOPPED": EXIT_NOT_DONE, "ERROR": EXIT_ERROR,
              "NEEDS_USER": EXIT_NEEDS_USER}
_BY_ERROR = {"parse": EXIT_UNPARSED, "unreachable": EXIT_UNREACHABLE}
EXIT_CODES_HELP = ("Exit codes: 0 DONE or PASSED; 1 FAIL, FAILED, MAX_STEPS or STOPPED; 2 usage error or other ERROR; "
                   "3 the model's replies never parsed; 4 the model server is unreachable or refused; 5 NEEDS_USER (the model "
                   "asked a question and no person was attached: no terminal, no live page); 130 interrupted.")


def exit_code(result) -> int:
    status = result.status.value
    if status == "ERROR" and result.error_kind in _BY_ERROR:
        return _BY_ERROR[result.error_kind]
    return _BY_STATUS.get(status, EXIT_ERROR)


def _last_thought(run_dir: Path) -> str:
    from deskpilot.agent.records.trajectory import load_run

    try:
        steps = load_run(run_dir).steps
    except Exception:
        return ""
    for rec in reversed(steps):
        if rec.thought:
            return rec.thought
    return ""


def _checks(result, run_dir: Path) -> list[dict[str, Any]]:
    if getattr(result, "checks", None):
        return list(result.checks)
    from deskpilot.agent.records.report import checks_of

    try:
        return checks_of(run_dir)
    except Exception:  # a run folder that cannot be read has no checks to show
        return []


def result_payload(result, run_dir: Path) -> dict[str, Any]:
    """The run's outcome as one JSON-able object (what `--json` prints)."""
    return {"status": result.status.value, "answer": result.answer, "reason": result.reason,
            "steps": result.steps, "run_dir": str(run_dir), "report": str(run_dir / "report.html"),
            "error_kind": result.error_kind, "exit_code": exit_code(result), "totals": result.totals,
            "checks": _checks(result, run_dir)}


def print_result(result, run_dir: Path, console, *, as_json: bool = False) -> None:
    """The result on stdout (one line, or one JSON object); the model's last thought on stderr when it failed."""
    from rich.markup import escape

    status = result.status.value
    if status in ("FAIL", "MAX_STEPS", "STOPPED", "ERROR"):
        thought = _last_thought(run_dir)
        if thought:
            console.print(f"[dim]the model's last thought:[/dim] {escape(thought)}")
    for check in getattr(result, "checks", None) or []:
        mark = "[green]PASS[/green]" if check.get("passed") else "[red]FAIL[/red]"
        console.print(f"  {mark} {escape(str(check.get('label', '')))}: {escape(str(check.get('message', '')))}")
    t = result.totals
    if "model_calls_saved" in t:
        console.print(f"cache: {t['model_calls_saved']} model call(s) saved")
    if t.get("image_tokens"):
        saved = t.get("image_token_savings_pct", 0)
        console.print(f"image tokens {t['image_tokens']}" + (f" ({saved:g}% fewer than full size)" if saved else "")
                      + f", prompt tokens ~{t.get('prompt_tokens_est', 0)}"
                      + f", reusable prefix {100 * t.get('prefix_share', 0):.0f}%")
    if as_json:
        sys.stdout.write(json.dumps(result_payload(result, run_dir), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    parts = [f"{status} after {result.steps} step(s)" + (f": {result.reason}" if result.reason else "")]
    if result.answer:
        parts.append(f"answer: {result.answer}")
    parts += [f"run folder: {run_dir}", f"report: {run_dir / 'report.html'}"]
    line = " | ".join(" ".join(p.split()) for p in parts)  # one line, whatever the model wrote
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Elapsed:
    """A spinner text that shows how long the model has been thinking (re-rendered on every refresh)."""

    def __init__(self, text: str):
        self.text = text
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        return Text(f"{self.text} {time.monotonic() - self.started:.0f} s")
