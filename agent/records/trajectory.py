"""The run folder: settings, one JSON line per event, a PNG per step.

Every line is written whole and fsynced before the loop moves on, so a run
killed at any moment leaves a readable trajectory up to its last step. The
writer cannot lose a run: a record that cannot be serialised is replaced by an
error record, a failed write (a full disk) is cut back to the last whole line
and raised as one RunFolderError, and raw replies are capped at
``MAX_STORED_REPLY`` characters (the full text goes to ``replies/`` when asked).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from pydantic import BaseModel, ValidationError

from deskpilot.errors import RunFolderError
from deskpilot.agent.records.secrets import map_strings
from deskpilot.agent.records.models import (
    ActedRecord, CheckRecord, EndRecord, ErrorRecord, HumanRecord, QueryRecord, StepRecord,
)
from deskpilot.perception.encode import encode_png

TRAJECTORY = "trajectory.jsonl"
SETTINGS = "settings.json"
REPLIES = "replies"
RESERVE = ".space-reserve"  # freed on the first disk error, so the end record still fits
RESERVE_BYTES = 64 * 1024
MAX_STORED_REPLY = 20_000  # characters of one raw reply or reasoning kept in trajectory.jsonl and the report
_CAPPED = ("raw_reply", "reasoning")
_SURROGATE = re.compile("[\ud800-\udfff]")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _encode(line: str) -> bytes:
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be UTF-8: keep the rest of the text
        return _SURROGATE.sub("\ufffd", line).encode("utf-8")


def _disk_error(path: Path, exc: OSError) -> RunFolderError:
    reason = exc.strerror or type(exc).__name__
    return RunFolderError(f"cannot write {path}: {reason}; the run stops (what was recorded before is intact)")


class Trajectory:
    """Appends records to a run folder; secrets are redacted on the way out.

    ``full_replies`` keeps the whole text of capped replies in ``replies/``.
    """

    def __init__(self, run_dir: Path, redact: Callable[[str], str] | None = None, *, full_replies: bool = False):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._redact = redact or (lambda s: s)
        self.full_replies = full_replies
        self.path = self.run_dir / TRAJECTORY
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size  # end of the last whole line
        self._reserve = self.run_dir / RESERVE
        try:
            self._reserve.write_bytes(b"\0" * RESERVE_BYTES)
        except OSError:  # a disk already full: nothing to hold back
            self._reserve.unlink(missing_ok=True)

    def _disk_error(self, path: Path, exc: OSError) -> RunFolderError:
        """The one-line error, after freeing the reserve so the end record can still be written."""
        self._reserve.unlink(missing_ok=True)
        return _disk_error(path, exc)

    def write_settings(self, settings: dict[str, Any]) -> None:
        path = self.run_dir / SETTINGS
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(map_strings(settings, self._redact), indent=2, default=str), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._disk_error(path, exc) from None

    def save_screenshot(self, image: Image.Image, name: str) -> str:
        path = self.run_dir / name
        try:
            path.write_bytes(encode_png(image))
        except OSError as exc:
            path.unlink(missing_ok=True)  # no half PNG
            raise self._disk_error(path, exc) from None
        return name

    def append(self, record: BaseModel) -> None:
        """Write one record as one fsynced line (see the module docstring for failures)."""
        try:
            line = self._line(record)
        except RunFolderError:
            raise
        except Exception as exc:  # any serialisation failure becomes an error record
            step = getattr(record, "step", None)
            kind = str(getattr(record, "kind", type(record).__name__))
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            stand_in = ErrorRecord(time=now_iso(), record=kind, step=step if isinstance(step, int) else None,
                                   error=f"the {kind} record could not be written ({detail})")
            line = _encode(json.dumps(stand_in.model_dump(mode="json"), ensure_ascii=False) + "\n")
        self._write(line)

    def _line(self, record: BaseModel) -> bytes:
        data = map_strings(record.model_dump(mode="json"), self._redact)
        if isinstance(data, dict):
            self._cap(data, data)
        return _encode(json.dumps(data, ensure_ascii=False) + "\n")

    def _cap(self, data: dict[str, Any], record: dict[str, Any], suffix: str = "") -> None:
        """Cut raw replies and reasoning to MAX_STORED_REPLY characters (here and in attempts)."""
        for key in _CAPPED:
            text = data.get(key)
            if isinstance(text, str) and len(text) > MAX_STORED_REPLY:
                note = ""
                if self.full_replies:
                    note = f"; full text in {self._side_file(record, key + suffix, text)}"
                data[key] = text[:MAX_STORED_REPLY] + f"\n[... {len(text) - MAX_STORED_REPLY} more characters not stored{note}]"
        for index, attempt in enumerate(data.get("attempts") or []):
            if isinstance(attempt, dict):
                self._cap(attempt, record, f"{suffix}_attempt{index + 1}")

    def _side_file(self, record: dict[str, Any], what: str, text: str) -> str:
        step = record.get("step")
        label = f"step_{step:03d}" if isinstance(step, int) else f"{record.get('kind', 'query')}_{record.get('time', '')}"
        name = f"{REPLIES}/{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}_{what}.txt"
        path = self.run_dir / name
        try:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(_encode(text))
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise self._disk_error(path, exc) from None
        return name

    def _write(self, line: bytes) -> None:
        if self._fd is None:
            raise RunFolderError(f"{self.path} is closed")
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)  # no partial line
            except OSError:
                pass
            raise self._disk_error(self.path, exc) from None
        self._size += len(line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._reserve.unlink(missing_ok=True)


@dataclass
class LoadedRun:
    """A run folder read back: settings, steps (with their acted results), queries, end."""

    run_dir: Path
    settings: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    queries: list[QueryRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    humans: list[HumanRecord] = field(default_factory=list)  # a person's turns at the desk
    end: EndRecord | None = None
    skipped_lines: int = 0
    errors: list[ErrorRecord] = field(default_factory=list)  # records the writer had to replace

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

    def error_messages(self) -> list[str]:
        """Every error recorded: rejected replies, failed steps and actions, failed queries, the end reason."""
        found = [a.error for s in self.steps for a in s.attempts]
        found += [s.error for s in self.steps if s.error]
        found += [q.error for q in self.queries if q.error]
        found += [f"{e.record} record not written: {e.error}" for e in self.errors]
        if self.end is not None and self.end.status.value not in ("DONE", "PASSED") and self.end.reason:
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
    if not isinstance(settings, dict):
        raise RunFolderError(f"{settings_path} does not hold a JSON object")
    for key in ("loop", "policy", "session"):
        if key in settings and not isinstance(settings[key], dict):
            raise RunFolderError(f"{settings_path}: '{key}' is not a JSON object")
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
                    target.settle = acted.settle
                    target.performed = acted.error is None
                    target.error = acted.error or target.error
            elif kind in ("locate", "ask"):
                run.queries.append(QueryRecord.model_validate(data))
            elif kind == "check":
                run.checks.append(CheckRecord.model_validate(data))
            elif kind == "human":
                run.humans.append(HumanRecord.model_validate(data))
            elif kind == "end":
                run.end = EndRecord.model_validate(data)
            elif kind == "error":
                run.errors.append(ErrorRecord.model_validate(data))
        except (json.JSONDecodeError, ValidationError, AttributeError):
            run.skipped_lines += 1
    return run
