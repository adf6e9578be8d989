"""Replay: a changed terminal text is a divergence (with the live screen and a diff image saved),
dry-run recordings are refused, and only steps that were performed are replayed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deskpilot.agent.loop.agent import Agent, LoopSettings
from deskpilot.agent.records.models import ActedRecord, EndRecord, Status, StepRecord
from deskpilot.agent.records.replay import replay
from deskpilot.agent.desk.session import AppSpec, SessionSpec, open_sandbox, wait_until_ready
from deskpilot.agent.records.trajectory import Trajectory, now_iso
from deskpilot.errors import ReplayError
from deskpilot.model_backend import ScriptedBackend
from deskpilot.perception import Capturer

SIZE = (1024, 640)


def box(call: str) -> str:
    return f"Next step.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def terminal(text: str) -> AppSpec:
    """An xterm that prints `text` (given as an argument, never through a shell string) and waits."""
    return AppSpec(argv=["xterm", "-fa", "DejaVu Sans Mono", "-fs", "13", "-geometry", "60x8+40+40",
                         "-e", "/bin/sh", "-c", 'printf "%s\\n" "$0"; exec sleep 600', text])


def record(run_dir: Path, text: str, *, dry_run: bool = False) -> SessionSpec:
    spec = SessionSpec(size=SIZE, apps=[terminal(text)])
    replies = [box("left_click(start_box='[300,150]')"), box("key(keys='shift')"), box("DONE()")]
    sb, apps = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer, handles=apps)
            with Agent(ScriptedBackend(replies), sb, run_dir=run_dir, capturer=capturer,
                       settings=LoopSettings(dry_run=dry_run),
                       run_info={"session": spec.model_dump(mode="json")}) as agent:
                result = agent.run("look at the terminal")
        finally:
            capturer.close()
    assert result.status == Status.DONE, result.reason
    return spec


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("replay") / "run"
    record(run_dir, "build 4711 finished: all 12 tests passed")
    return run_dir


def test_replay_of_the_same_terminal_has_no_divergence(recorded, tmp_path):
    seen = []
    result = replay(recorded, out_dir=tmp_path / "r1", on_step=lambda n, total, px: seen.append((n, px)))
    assert result.ok, result.message
    assert result.steps_replayed == 3 and [n for n, _ in seen] == [1, 2, 3]
    assert all(px is not None and px <= 10 for _, px in seen)
    assert "the recording ended at step 3 with DONE" in result.message


def test_replay_catches_changed_terminal_text(recorded, tmp_path):
    spec = SessionSpec(size=SIZE, apps=[terminal("build 4711 finished: 3 of 12 tests FAILED")])
    result = replay(recorded, session=spec, out_dir=tmp_path / "r2")
    assert not result.ok and result.diverged_at == 1 and result.steps_replayed == 0
    assert result.largest_change > 10
    live, diff = Path(result.live_image), Path(result.diff_image)
    assert live.parent == diff.parent == tmp_path / "r2"
    assert live.name == "diverged_step_001_live.png" and diff.name == "diverged_step_001_diff.png"
    assert str(live) in result.message and str(diff) in result.message
    pixels = np.asarray(Image.open(diff).convert("RGB"))
    red = int(np.all(pixels == (255, 0, 0), axis=-1).sum())
    assert red > 64  # the changed characters are painted red


def test_a_dry_run_recording_is_refused(tmp_path):
    run_dir = tmp_path / "dry"
    record(run_dir, "nothing happens here", dry_run=True)
    with pytest.raises(ReplayError, match="recorded with --dry-run"):
        replay(run_dir)


def test_only_performed_steps_are_replayed(tmp_path):
    """A recording whose step 2 failed to act: replay does step 1 only, and says where it ended."""
    from deskpilot.agent.records.replay import _ending, _replayable
    from deskpilot.agent.records.trajectory import load_run

    traj = Trajectory(tmp_path / "run")
    traj.write_settings({"task": "t", "session": SessionSpec(size=SIZE).model_dump(mode="json")})
    click = {"type": "click", "x": 10, "y": 10, "button": "left"}
    traj.append(StepRecord(step=1, time=now_iso(), action=click))
    traj.append(ActedRecord(step=1))
    traj.append(StepRecord(step=2, time=now_iso(), action=click))
    traj.append(ActedRecord(step=2, error="action failed: the input worker died"))
    traj.append(EndRecord(time=now_iso(), status=Status.ERROR, reason="action failed", steps=2))
    traj.close()
    run = load_run(tmp_path / "run")
    assert [r.step for r in _replayable(run)] == [1]
    assert _ending(run) == "the recording ended at step 2 with ERROR (action failed)"
