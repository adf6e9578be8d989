"""The trajectory writer cannot lose a run: bad records, huge replies, a full disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from deskpilot.agent.records.models import Attempt, EndRecord, QueryRecord, Status, StepRecord
from deskpilot.agent.records.report import build_report
from deskpilot.agent.records.trajectory import MAX_STORED_REPLY, Trajectory, load_run, now_iso
from PIL import Image

from deskpilot.errors import RunFolderError


def _lines(run_dir: Path) -> list[dict]:
    """Every line of the trajectory, each required to be whole JSON."""
    raw = (run_dir / "trajectory.jsonl").read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "a partial last line"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_record_that_cannot_be_serialised_becomes_an_error_record_and_the_run_goes_on(tmp_path):
    traj = Trajectory(tmp_path)
    traj.append(StepRecord(step=1, time=now_iso(), memory=_deep(990)))  # "Maximum serialization depth exceeded"
    traj.append(StepRecord(step=2, time=now_iso(), thought="fine"))
    traj.append(EndRecord(time=now_iso(), status=Status.DONE, steps=2))
    traj.close()
    kinds = [line["kind"] for line in _lines(tmp_path)]
    assert kinds == ["error", "step", "end"]
    run = load_run(tmp_path)
    lost = run.errors[0]
    assert lost.record == "step" and lost.step == 1
    assert "could not be written" in lost.error and "\n" not in lost.error
    assert any(lost.error in message for message in run.error_messages())
    assert [s.step for s in run.steps] == [2] and run.end.status == Status.DONE
    assert "DONE" in build_report(tmp_path).read_text()


def test_lone_surrogates_are_written_as_replacement_characters(tmp_path):
    traj = Trajectory(tmp_path)
    traj.append(StepRecord(step=1, time=now_iso(), raw_reply="a\ud800b", thought="\udfff"))
    traj.close()
    (line,) = _lines(tmp_path)
    assert line["raw_reply"] == "a\ufffdb" and line["thought"] == "\ufffd"


def test_raw_replies_are_capped_in_the_trajectory_and_the_report(tmp_path):
    huge = "x" * 10_800_000  # the audit's 10.8 MB reply became 43 MB of trajectory and 43 MB of report
    traj = Trajectory(tmp_path)
    traj.append(StepRecord(step=1, time=now_iso(), raw_reply=huge, reasoning=huge,
                           attempts=[Attempt(raw_reply=huge, error="too long")]))
    traj.append(QueryRecord(kind="ask", time=now_iso(), query="q", raw_reply=huge))
    traj.append(EndRecord(time=now_iso(), status=Status.ERROR, steps=1))
    traj.close()
    assert (tmp_path / "trajectory.jsonl").stat().st_size < 5 * MAX_STORED_REPLY + 10_000
    step = load_run(tmp_path).steps[0]
    assert step.raw_reply.startswith("x" * MAX_STORED_REPLY) and "10780000 more characters not stored]" in step.raw_reply
    assert build_report(tmp_path).stat().st_size < 6 * MAX_STORED_REPLY + 50_000
    assert not (tmp_path / "replies").exists()


def test_full_replies_go_to_side_files_when_asked(tmp_path):
    huge = "y" * (MAX_STORED_REPLY + 5)
    traj = Trajectory(tmp_path, full_replies=True, redact=lambda s: s.replace("secret", "***"))
    traj.append(StepRecord(step=3, time=now_iso(), raw_reply="secret" + huge, attempts=[Attempt(raw_reply=huge, error="e")]))
    traj.close()
    line = _lines(tmp_path)[0]
    assert "full text in replies/step_003_raw_reply.txt" in line["raw_reply"]
    assert "replies/step_003_raw_reply_attempt1.txt" in line["attempts"][0]["raw_reply"]
    assert (tmp_path / "replies" / "step_003_raw_reply.txt").read_text() == "***" + huge  # redacted there too


@pytest.fixture
def tiny_disk(tmpfs):
    """A 256 KiB tmpfs (needs root and mount; skipped where neither is available)."""
    return tmpfs("256k")


def _fill(folder: Path) -> None:
    """Take all the space but a few bytes."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_disk_is_one_clear_error_and_leaves_only_whole_lines(tiny_disk):
    run_dir = tiny_disk / "run"
    traj = Trajectory(run_dir)
    traj.write_settings({"task": "t"})
    traj.append(StepRecord(step=1, time=now_iso(), thought="ok"))
    before = (run_dir / "trajectory.jsonl").stat().st_size
    _fill(tiny_disk)
    with pytest.raises(RunFolderError) as info:
        traj.append(StepRecord(step=2, time=now_iso(), raw_reply="z" * 15_000))
    message = str(info.value)
    assert "No space left on device" in message and "\n" not in message and "trajectory.jsonl" in message
    assert (run_dir / "trajectory.jsonl").stat().st_size == before
    with pytest.raises(RunFolderError, match="No space left"):
        traj.save_screenshot(Image.effect_noise((400, 400), 90), "step_002.png")
    assert not (run_dir / "step_002.png").exists()  # no half PNG
    os.unlink(tiny_disk / "filler")
    traj.append(EndRecord(time=now_iso(), status=Status.ERROR, steps=2, reason=message))  # space again: the end is written
    traj.close()
    assert [line["kind"] for line in _lines(run_dir)] == ["step", "end"]
