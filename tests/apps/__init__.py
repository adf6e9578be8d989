"""Test apps run inside sandboxes, and helpers to read what they logged."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

APPS_DIR = Path(__file__).resolve().parent
PROBE_APP = APPS_DIR / "probe_app.py"


def system_python() -> str:
    """The distribution's python3 (it has tkinter; the venv is invisible in bwrap)."""
    found = shutil.which("python3", path=os.defpath)
    if not found:
        raise RuntimeError("no system python3 on the default PATH")
    return found


class EventLog:
    """Reads an app's JSON-lines stdout file as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._events: list[dict] = []
        self._offset = 0
        self._partial = b""

    def refresh(self) -> list[dict]:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = self._partial + f.read()
                self._offset = f.tell()
            *lines, self._partial = data.split(b"\n")
            self._events += [json.loads(line) for line in lines if line.strip()]
        return self._events

    def mark(self) -> int:
        """Index after the last event so far, once the log has been quiet for 0.1 s.

        Waiting for quiet keeps a previous action's late events (e.g. the
        last release of a double click, logged slowly on a loaded machine)
        from being taken for the next action's.
        """
        count = len(self.refresh())
        while True:
            time.sleep(0.1)
            now = len(self.refresh())
            if now == count:
                return count
            count = now

    def since(self, mark: int) -> list[dict]:
        return self.refresh()[mark:]

    def wait_for(self, pred: Callable[[dict], bool], mark: int = 0, timeout: float = 5.0) -> dict:
        """First event after ``mark`` matching ``pred``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.since(mark):
                if pred(event):
                    return event
            if time.monotonic() > deadline:
                tail = [e for e in self.since(mark) if e.get("ev") != "motion"][-8:]
                raise AssertionError(f"no matching event within {timeout} s; last events: {tail}")
            time.sleep(0.01)


@dataclass
class Probe:
    """A running probe app: its process, log and widgets' root geometry."""

    app: object
    log: EventLog
    widgets: dict[str, list[int]] = field(default_factory=dict)

    def box(self, name: str) -> tuple[int, int, int, int]:
        x, y, w, h = self.widgets[name]
        return x, y, w, h

    def point(self, name: str, dx: int, dy: int) -> tuple[int, int]:
        """Root coordinates of (dx, dy) inside a widget (negative = from the far edge)."""
        x, y, w, h = self.box(name)
        return x + (dx if dx >= 0 else w + dx), y + (dy if dy >= 0 else h + dy)

    def content(self, mark: int = 0) -> dict:
        events = [e for e in self.log.since(mark) if e["ev"] == "content"]
        return events[-1] if events else {}

    def wait_content(self, key: str, expected: str, mark: int = 0, timeout: float = 5.0) -> dict:
        return self.log.wait_for(lambda e: e["ev"] == "content" and e[key] == expected, mark, timeout)


def launch_probe(sandbox, title: str = "deskpilot-probe", x: int = 40, y: int = 40, timeout: float = 15.0) -> Probe:
    """Start the probe app in ``sandbox`` and wait for its ready line."""
    from deskpilot.sandbox import Bind

    app = sandbox.launch(
        [system_python(), str(PROBE_APP), "--title", title, "--x", str(x), "--y", str(y)],
        binds=[Bind(host=APPS_DIR)],
    )
    log = EventLog(app.stdout_path)
    try:
        ready = log.wait_for(lambda e: e["ev"] == "ready", timeout=timeout)
    except AssertionError:
        errors = Path(app.stderr_path).read_text(errors="replace")[-500:] if app.stderr_path else ""
        raise AssertionError(f"probe app never became ready: {errors}") from None
    return Probe(app=app, log=log, widgets=ready["widgets"])
