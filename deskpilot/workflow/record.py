"""What a workflow run writes: one JSON line per step in ``workflow.jsonl``, fsynced as it goes.

The first line is a ``start`` record (the workflow as validated, variables
with secrets hidden), then one ``step`` record per step as it ends, and
always an ``end`` record, also after an error or Ctrl-C, so a killed run
still reads back.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

LOG = "workflow.jsonl"
Status = Literal["passed", "failed", "error", "skipped"]


class StepResult(BaseModel):
    """One step's outcome. ``number`` is 3 or, inside a foreach, 3.row.step (e.g. 3.2.1)."""

    number: str
    kind: str
    label: str
    status: Status
    message: str = ""
    seconds: float = 0.0
    screenshot: str | None = None  # file name in the run folder (a failed step's: the screen when it failed)
    evidence: dict[str, str] = Field(default_factory=dict)  # a failure's files: screenshot, ocr_text, diff
    agent_run: str | None = None  # sub-folder holding the agent's own run
    answer: str | None = None
    checks: list[dict[str, Any]] = Field(default_factory=list)


class WorkflowResult(BaseModel):
    name: str
    ok: bool
    run_dir: str
    steps: list[StepResult] = Field(default_factory=list)
    vars: dict[str, str] = Field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    report_path: str | None = None

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status in ("failed", "error")]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Log:
    """Append-only JSON lines, each flushed and fsynced before the next step acts."""

    def __init__(self, run_dir: Path, redact) -> None:
        self.path = run_dir / LOG
        self.redact = redact
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: str, **fields: Any) -> None:
        line = json.dumps(self.redact({"record": record, "time": now(), **fields}), ensure_ascii=False, default=str)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a workflow run folder (a torn last line is skipped)."""
    records = []
    for line in (Path(run_dir) / LOG).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
