"""`deskpilot record`: a person shows a task on a sandbox (over VNC or the live page), a workflow comes out.

The sandbox is the one `run` would get (size, apps, shares); the person drives
it through VNC (the printed line, or noVNC in the live page); the X server's
RECORD extension reports every key and button, whatever client sent it. At
each click the widget under the pointer is asked of the accessibility bus (an
element step where it has a unique role and name), the screen is grabbed (for
OCR: ``click_text`` where the click hit readable text) and at each event the window titles are read (new titles become
``wait_for_window``). Ctrl-C, SIGTERM or "Hand back" in the page ends it: the
workflow file is written, and the run folder keeps one screenshot per step
(a normal run folder with a report).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, Field

from deskpilot.record.compile import Compiled, Seen, compile_steps, ocr_text_at
from deskpilot.record.tree import TreeWatcher

from deskpilot.record.writers import output_format, portable_desktop, write_output, write_workflow

__all__ = ["Recording", "RecordResult", "compile_steps", "output_format", "portable_desktop", "write_output",
           "write_workflow"]


class RecordResult(BaseModel):
    """What a recording produced."""

    workflow: Path
    format: str = "workflow"
    run_dir: Path
    steps: int
    events: int
    notes: list[str] = Field(default_factory=list)


class Recording:
    """One recording session on an open ``Session``: ``start()``, then ``finish(...)`` writes the files."""

    def __init__(self, desk, *, ocr: bool = True, elements: bool = True, shares: list[Path] | None = None) -> None:
        from deskpilot.record.files import share_files

        from deskpilot.perception.inputs import InputRecorder
        from deskpilot.sandbox import x11

        self.desk = desk
        self.ocr = ocr
        self._tree = TreeWatcher(desk.a11y) if elements and desk.sandbox.a11y_address is not None else None
        self.seen: list[Seen] = []
        self.shares = list(shares or [])
        self._files = share_files(self.shares)
        self._lock = threading.Lock()
        self._x = x11.connect(desk.sandbox.display, desk.sandbox.xauthority)
        self.initial = self._windows()
        self._recorder = InputRecorder(desk.sandbox.display, desk.sandbox.xauthority, on_event=self._on_event)

    def start(self) -> "Recording":
        if self._tree is not None:
            self._tree.start()
        self._recorder.start()
        return self

    def _windows(self) -> dict[int, str]:
        from deskpilot.sandbox import x11

        try:
            return {wid: x11.window_title(self._x, wid) for wid in x11.client_windows(self._x)}
        except Exception:  # a window went away while we read: try again at the next event
            return {}

    def _on_event(self, event) -> None:
        if event.kind not in ("key_press", "button_press"):
            return
        element = None
        if self._tree is not None:
            if event.kind == "button_press" and event.detail == 1:
                element = self._tree.element_at(event.x, event.y)
            self._tree.poke()
        frame = self.desk.observe().image.copy() if event.kind == "button_press" else None
        with self._lock:
            self.seen.append(Seen(event=event, windows=self._windows(), frame=frame, element=element))

    def stop(self) -> None:
        self._recorder.stop()
        if self._tree is not None:
            self._tree.stop()
        try:
            self._x.close()
        except Exception:
            pass

    def file_checks(self, folder: Path) -> list[Compiled]:
        """A check step for each share file written since the start, named relative to ``folder``."""
        from deskpilot.record.files import changed_files, file_check, share_files

        now = share_files(self.shares)
        checks = [Compiled(step={"check": file_check(path, folder)}) for path in changed_files(self._files, now)]
        self._files = now
        return checks

    def compile(self, element_step=None) -> list[Compiled]:
        with self._lock:
            seen = list(self.seen)
        return compile_steps(seen, self.desk.size, text_at=ocr_text_at if self.ocr else None,
                             element_step=element_step, initial=self.initial)


def keep_run_folder(run_dir: Path, spec, steps: list[Compiled], say: Callable[[str], None], *,
                    desktop: dict[str, Any] | None = None, name: str = "recorded") -> None:
    """The recording as a run folder: settings, one human record (and screenshot) per step, an end, a report,
    and the steps as a workflow (``recorded.yaml``) whatever format ``--out`` asked for."""
    from deskpilot.agent.records.models import EndRecord, HumanRecord, Status
    from deskpilot.agent.records.report import build_report
    from deskpilot.agent.records.trajectory import Trajectory, now_iso

    trajectory = Trajectory(run_dir)
    trajectory.write_settings({"task": "(recorded demonstration)", "dialect": "record", "backend": "a person",
                               "session": spec.model_dump(mode="json"), "screen_size": list(spec.size)})
    for n, compiled in enumerate(steps, 1):
        shot = trajectory.save_screenshot(compiled.frame, f"record_{n:03d}.png") if compiled.frame is not None else None
        line = yaml.safe_dump(compiled.step, default_flow_style=True, allow_unicode=True, width=1000).strip()
        trajectory.append(HumanRecord(after_step=0, time=now_iso(), note=line, screenshot_before=shot, history_line=line))
    trajectory.append(EndRecord(time=now_iso(), status=Status.DONE, reason="recording ended", steps=0))
    trajectory.close()
    if desktop is not None:
        write_workflow(run_dir / "recorded.yaml", name, desktop, steps)
    try:
        build_report(run_dir)
    except Exception as exc:  # the workflow file is what matters; say why the report is missing
        say(f"warning: no report.html: {type(exc).__name__}: {exc}")
