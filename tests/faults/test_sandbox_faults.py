"""Fault injection, sandbox side: the desktop breaks in the middle of a run.

The loop runs for real (real sandbox, the Tk demo form, the real executor)
and is driven by hand-written GLM-4.5V replies. While the model "thinks" about
step 3, the test kills a part of the desktop: Xvfb, the app, or the window
manager. Whatever breaks, the run must end with a clear ERROR status naming
what broke, and leave a complete run folder: a trajectory that loads and ends
with an end record, and a report that builds.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from deskpilot.agent.loop.agent import Agent, LoopSettings
from deskpilot.agent.records.models import Status
from deskpilot.agent.records.report import build_report
from deskpilot.agent.desk.session import SessionSpec, open_sandbox, wait_until_ready
from deskpilot.demo import demo_app
from deskpilot.agent.records.trajectory import load_run
from deskpilot.model_backend import ScriptedBackend
from deskpilot.perception import Capturer

SIZE = (1024, 640)
REPLIES = [
    "Click the name field.\n<|begin_of_box|>left_click(start_box='[500,300]')<|end_of_box|>\nMemory:\n[]",
    "Type the name.\n<|begin_of_box|>type(content='Ada')<|end_of_box|>\nMemory:\n[]",
    "Click the email field.\n<|begin_of_box|>left_click(start_box='[500,420]')<|end_of_box|>\nMemory:\n[]",
    "Type the email.\n<|begin_of_box|>type(content='ada@example.org')<|end_of_box|>\nMemory:\n[]",
    "Save.\n<|begin_of_box|>left_click(start_box='[500,580]')<|end_of_box|>\nMemory:\n[]",
    "Saved.\n<|begin_of_box|>DONE()<|end_of_box|>\nMemory:\n[]",
]


class FaultyBackend(ScriptedBackend):
    """Scripted replies; ``fault()`` runs while the model is asked for step ``at`` (a simulator of model time)."""

    def __init__(self, replies, at: int, fault) -> None:
        super().__init__(replies)
        self.at, self.fault = at, fault

    def complete(self, request):
        if len(self.requests) + 1 == self.at:
            self.fault()
        return super().complete(request)


def _descendants(pid: int) -> list[int]:
    parents = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        parents[int(name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    found = [pid]
    for child, parent in sorted(parents.items()):
        if parent in found:
            found.append(child)
    return found[1:]


def _the_app_process(launcher: int) -> int:
    """Host pid of the app itself (python3 form_app.py), below bubblewrap and its reaper."""
    for pid in _descendants(launcher):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(cmdline) > 1 and cmdline[1].endswith(b"form_app.py"):  # not the reaper (perl -e / python3 -c ...)
            return pid
    raise AssertionError("the app process was not found")


def _run_with_fault(tmp_path: Path, fault_on, replies=REPLIES) -> tuple:
    out = tmp_path / "out"
    out.mkdir()
    spec = SessionSpec(size=SIZE, shares=[str(out)], apps=[demo_app(out / "form.json")])
    sb, handles = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer)
            backend = FaultyBackend(replies, at=3, fault=lambda: fault_on(sb, handles))
            with Agent(backend, sb, run_dir=tmp_path / "run", capturer=capturer,
                       settings=LoopSettings(settle_cap_s=0.5)) as agent:  # fmt: skip
                result = agent.run("Fill in the form")
        finally:
            capturer.close()
    return result, load_run(tmp_path / "run"), build_report(tmp_path / "run").read_text()


def _check_complete(result, run, html: str, reason: str) -> None:
    assert result.status == Status.ERROR
    assert reason in result.reason
    assert run.end is not None and run.end.status == Status.ERROR and reason in run.end.reason
    assert [s.step for s in run.steps][:2] == [1, 2] and all(s.performed for s in run.steps[:2])
    assert "ERROR" in html and reason in html


def _trajectory_lines_are_whole(run_dir: Path) -> None:
    for line in (run_dir / "trajectory.jsonl").read_text().splitlines():
        json.loads(line)


def test_xvfb_killed_mid_run(tmp_path: Path) -> None:
    result, run, html = _run_with_fault(tmp_path, lambda sb, handles: os.kill(sb.xvfb_pid, signal.SIGKILL))
    _check_complete(result, run, html, "the X server (Xvfb")
    assert "killed by SIGKILL" in result.reason
    _trajectory_lines_are_whole(tmp_path / "run")


def test_xvfb_killed_before_the_next_capture(tmp_path: Path) -> None:
    # step 3 waits instead of acting, so the first thing to meet the dead display is a capture
    replies = REPLIES[:2] + ["Wait for it.\n<|begin_of_box|>wait()<|end_of_box|>\nMemory:\n[]"] + REPLIES[2:]
    result, run, html = _run_with_fault(tmp_path, lambda sb, handles: os.kill(sb.xvfb_pid, signal.SIGKILL), replies)
    _check_complete(result, run, html, "the X server (Xvfb")
    _trajectory_lines_are_whole(tmp_path / "run")


def test_app_crash_mid_run(tmp_path: Path) -> None:
    def crash(sb, handles):
        os.kill(_the_app_process(handles[0].pid), signal.SIGSEGV)
        handles[0].wait(10)  # the sandbox's reaper passes the signal on as the launcher's exit code

    result, run, html = _run_with_fault(tmp_path, crash)
    _check_complete(result, run, html, "crashed: killed by SIGSEGV")
    assert "form_app.py" in result.reason
    _trajectory_lines_are_whole(tmp_path / "run")


def test_window_manager_dies_mid_run(tmp_path: Path) -> None:
    def kill_wm(sb, handles):
        sb.wm.kill()
        sb.wm.wait(10)

    result, run, html = _run_with_fault(tmp_path, kill_wm)
    _check_complete(result, run, html, "the window manager (openbox) exited")
    _trajectory_lines_are_whole(tmp_path / "run")


@pytest.mark.parametrize("code", [0, 3])
def test_an_app_that_exits_by_itself_is_not_a_crash(code: int, tmp_path: Path) -> None:
    from deskpilot.sandbox import Sandbox

    with Sandbox((320, 240), window_manager=False) as sb:
        app = sb.launch(["/bin/sh", "-c", f"exit {code}"])
        assert app.wait(10) == code
        assert sb.problem() is None
        sb.launch(["/bin/sh", "-c", "kill -ABRT $$"]).wait(10)
        assert "crashed: killed by SIGABRT" in (sb.problem() or "")


def test_capture_of_a_dead_display_is_one_clear_error_and_closes_quietly() -> None:
    from deskpilot.errors import CaptureError
    from deskpilot.sandbox import Sandbox

    with Sandbox((320, 240), window_manager=False) as sb:
        capturer = Capturer(sb)
        capturer.grab()
        os.kill(sb.xvfb_pid, signal.SIGKILL)
        sb._xvfb.wait(10)
        with pytest.raises(CaptureError, match=f"capture of {sb.display} failed"):
            capturer.grab()
        capturer.close()  # must not raise: the run's teardown goes on
        assert "the X server (Xvfb" in (sb.problem() or "")
