"""`deskpilot run` killed with SIGKILL at random moments, and run on a disk that fills up.

CI kills 4 runs at seeded random moments (spread over start-up, steps, the end
record and the report); DESKPILOT_LONG_FUZZ=1 kills 40. Every killed run folder
must load, build a report, and hold only whole lines whose screenshots exist.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deskpilot.agent.records.report import build_report
from deskpilot.agent.records.trajectory import load_run

DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]
KILLS = 40 if os.environ.get("DESKPILOT_LONG_FUZZ") == "1" else 4
STEPS = 12


def _script(folder: Path) -> Path:
    replies = [f"Click.\n<|begin_of_box|>left_click(start_box='[{100 + 50 * i},500]')<|end_of_box|>\nMemory:\n[\"step {i}\"]"
               for i in range(STEPS)] + ["<|begin_of_box|>DONE(answer='finished')<|end_of_box|>"]
    path = folder / "replies.json"
    path.write_text(json.dumps(replies))
    return path


def _start(script: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(DESKPILOT + ["run", "click along", "--script", str(script), "--size", "640x480",
                                         "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _check_folder(out: Path, *, finished: bool | None = None) -> None:
    raw = (out / "trajectory.jsonl").read_bytes()
    lines = raw.splitlines()
    whole = [json.loads(line) for line in lines[:-1]]  # all but the last must be whole
    assert len(whole) == max(len(lines) - 1, 0)
    run = load_run(out)
    assert run.skipped_lines <= 1 and (run.skipped_lines == 0 or not raw.endswith(b"\n"))
    for step in run.steps:
        assert (out / step.screenshot).is_file()
    if finished is not None:
        assert (run.end is not None) == finished
    html = build_report(out).read_text()
    assert ('<span class="status INCOMPLETE">' in html) == (run.end is None)


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 60) -> float:
    """Seconds until ``path`` exists (the run has claimed its folder and started recording)."""
    started = time.monotonic()
    while not path.is_file():
        assert proc.poll() is None or path.is_file(), proc.stderr.read().decode()
        assert time.monotonic() - started < limit
        time.sleep(0.02)
    return time.monotonic() - started


def test_runs_killed_at_random_moments_leave_loadable_folders(tmp_path):
    script = _script(tmp_path)
    full = _start(script, tmp_path / "full")
    start_up = _wait_for(tmp_path / "full" / "trajectory.jsonl", full)
    started = time.monotonic()
    assert full.wait(120) == 0, full.stderr.read().decode()
    recording = time.monotonic() - started  # the steps, the end record and the report
    _check_folder(tmp_path / "full", finished=True)
    rng = random.Random(38)
    states = []
    for index in range(KILLS):
        out = tmp_path / f"killed{index}"
        proc = _start(script, out)
        if rng.random() < 0.2:  # during start-up
            time.sleep(rng.uniform(0.1, start_up))
        else:  # while recording: mostly mid-steps, sometimes at the end record or the report
            _wait_for(out / "trajectory.jsonl", proc)
            time.sleep(rng.uniform(0, recording * 1.05))
        os.killpg(proc.pid, signal.SIGKILL)  # the run and anything it started
        proc.wait(10)
        if not (out / "trajectory.jsonl").is_file():
            states.append("before the trajectory")
            continue
        _check_folder(out)
        run = load_run(out)
        states.append("ended" if run.end else f"{len(run.steps)} steps")
    print("kill moments:", sorted(states))  # shown with -s; RELIABILITY.md quotes the long mode
    assert sum(state not in ("before the trajectory", "ended") for state in states) >= KILLS // 2, states


@pytest.fixture
def small_disk(tmpfs):
    """A 1 MiB tmpfs (needs root and mount; skipped where neither is available)."""
    return tmpfs("1m")


def test_a_run_on_a_disk_that_fills_up_stops_with_a_clear_error_and_whole_lines(tmp_path, small_disk):
    script = _script(tmp_path)
    (small_disk / "filler").write_bytes(b"\0" * (1024 * 1024 - 100 * 1024))  # ~100 KiB left: the run fills it
    out = small_disk / "run"
    proc = _start(script, out)
    stdout, stderr = proc.communicate(timeout=120)
    text = stdout.decode() + stderr.decode()
    assert "Traceback" not in text, text
    assert proc.returncode == 2, text
    assert "ERROR" in text and "No space left on device" in text
    run = load_run(out)
    assert run.skipped_lines == 0 and (out / "trajectory.jsonl").read_bytes().endswith(b"\n")
    assert run.end is not None and run.end.status.value == "ERROR" and "No space left on device" in run.end.reason
    assert 0 < len(run.steps) < STEPS
    for step in run.steps:
        assert (out / step.screenshot).is_file()
