"""The run folder: settings, one JSON line per event, a PNG per step.

Every line is flushed and fsynced before the loop moves on, so a run killed
at any moment leaves a readable trajectory up to its last step.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from pydantic import BaseModel, ValidationError

from deskpilot.errors import RunFolderError
from deskpilot.agent.records import ActedRecord, EndRecord, QueryRecord, StepRecord
from deskpilot.perception.encode import encode_png

TRAJECTORY = "trajectory.jsonl"
SETTINGS = "settings.json"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _scrub(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, redact) for v in value]
    return value


class Trajectory:
    """Appends records to a run folder; secrets are redacted on the way out."""

    def __init__(self, run_dir: Path, redact: Callable[[str], str] | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._redact = redact or (lambda s: s)
        self._file = open(self.run_dir / TRAJECTORY, "a", encoding="utf-8")

    def write_settings(self, settings: dict[str, Any]) -> None:
        path = self.run_dir / SETTINGS
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_scrub(settings, self._redact), indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)

    def save_screenshot(self, image: Image.Image, name: str) -> str:
        (self.run_dir / name).write_bytes(encode_png(image))
        return name

    def append(self, record: BaseModel) -> None:
        data = _scrub(record.model_dump(mode="json"), self._redact)
        self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


@dataclass
class LoadedRun:
    """A run folder read back: settings, steps (with their acted results), queries, end."""

    run_dir: Path
    settings: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    queries: list[QueryRecord] = field(default_factory=list)
    end: EndRecord | None = None
    skipped_lines: int = 0

    # -- questions a person (or a test) asks of a finished run -------------------
    @property
    def task(self) -> str | None:
        return self.settings.get("task")

    @property
    def format_version(self) -> int:
        """1 for folders written before the format was versioned."""
        return int(self.settings.get("format", 1))

    @property
    def status(self) -> str:
        """The end status, or INCOMPLETE when the run never wrote its end record."""
        return self.end.status.value if self.end else "INCOMPLETE"

    @property
    def final_answer(self) -> str | None:
        return self.end.answer if self.end else None

    @property
    def report_path(self) -> Path | None:
        path = self.run_dir / "report.html"
        return path if path.is_file() else None

    def actions(self, *, performed_only: bool = False) -> list:
        """The typed actions chosen, in order (only those that reached the screen if asked)."""
        return [s.action for s in self.steps if s.action is not None and (s.performed or not performed_only)]

    def screenshots(self) -> list[Path]:
        """Paths of the screenshots each step saw, in order."""
        return [self.run_dir / s.screenshot for s in self.steps if s.screenshot]

    def errors(self) -> list[str]:
        """Every error recorded: rejected replies, failed steps and actions, failed queries, the end reason."""
        found = [a.error for s in self.steps for a in s.attempts]
        found += [s.error for s in self.steps if s.error]
        found += [q.error for q in self.queries if q.error]
        if self.end is not None and self.end.status.value not in ("DONE",) and self.end.reason:
            found.append(self.end.reason)
        return found


def load_run(run_dir: Path) -> LoadedRun:
    """Read a run folder, tolerating a torn last line (a run killed mid-write)."""
    run_dir = Path(run_dir)
    path = run_dir / TRAJECTORY
    if not path.is_file():
        raise RunFolderError(f"{run_dir} is not a run folder (no {TRAJECTORY})")
    settings_path = run_dir / SETTINGS
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8", errors="replace")) if settings_path.is_file() else {}
    except json.JSONDecodeError:
        raise RunFolderError(f"{settings_path} is not valid JSON") from None
    run = LoadedRun(run_dir=run_dir, settings=settings)
    by_step: dict[int, StepRecord] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            kind = data.get("kind")
            if kind == "step":
                rec = StepRecord.model_validate(data)
                by_step[rec.step] = rec
                run.steps.append(rec)
            elif kind == "acted":
                acted = ActedRecord.model_validate(data)
                if acted.step in by_step:
                    target = by_step[acted.step]
                    target.timings_ms.update(acted.timings_ms)
                    target.performed = acted.error is None
                    target.error = acted.error or target.error
            elif kind in ("locate", "ask"):
                run.queries.append(QueryRecord.model_validate(data))
            elif kind == "end":
                run.end = EndRecord.model_validate(data)
        except (json.JSONDecodeError, ValidationError, AttributeError):
            run.skipped_lines += 1
    return run
