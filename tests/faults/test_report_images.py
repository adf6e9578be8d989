"""`deskpilot report` on a trajectory that names images it should not inline (issue 26).

A trajectory is a plain file: a hand-made one named a root-only PNG outside the
run folder and the report embedded it; a FIFO hung the build; a 225-megapixel
PNG ended it with a traceback. Each is now a missing image with its reason.
Runs the real CLI in a subprocess with a timeout (a hang fails the test).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from bombs import write_huge_png
from deskpilot.actions.models import Click
from deskpilot.agent.records.models import EndRecord, QueryRecord, Status, StepRecord
from deskpilot.agent.records.trajectory import Trajectory, now_iso

DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]


def _step(traj: Trajectory, n: int, screenshot: str) -> None:
    action = Click(x=10, y=10)
    traj.append(StepRecord(step=n, time=now_iso(), screenshot=screenshot, screen_size=(64, 48), thought=f"t{n}",
                           action=action.model_dump(mode="json"), action_text="c()", points=action.points()))


def test_report_inlines_only_regular_files_inside_the_run_folder(tmp_path: Path) -> None:
    secret = tmp_path / "root-only.png"
    Image.new("RGB", (64, 48), "#123456").save(secret)
    secret.chmod(0o600)
    secret_b64 = base64.b64encode(secret.read_bytes()).decode()
    run = tmp_path / "run"
    traj = Trajectory(run)
    traj.write_settings({"task": "t", "dialect": "glm-4.5v"})
    good = traj.save_screenshot(Image.new("RGB", (64, 48), "#00ff00"), "step_001.png")
    _step(traj, 1, good)
    _step(traj, 2, str(secret))  # an absolute name outside the run folder
    _step(traj, 3, "../root-only.png")  # a relative one climbing out
    (run / "link.png").symlink_to(secret)  # a link planted in the run folder
    _step(traj, 4, "link.png")
    os.mkfifo(run / "fifo.png")  # opening it for reading would block forever
    _step(traj, 5, "fifo.png")
    write_huge_png(run / "huge.png")
    _step(traj, 6, "huge.png")
    traj.append(QueryRecord(kind="locate", time=now_iso(), query="q", screenshot="link.png", result=[1, 2, 3, 4]))
    traj.append(EndRecord(time=now_iso(), status=Status.DONE, steps=6, screenshot="fifo.png"))
    traj.close()

    done = subprocess.run(DESKPILOT + ["report", str(run)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    html = (run / "report.html").read_text()
    assert secret_b64 not in html and secret_b64[:200] not in html
    assert html.count("data:image/png;base64,") == 1  # step 1 only
    assert f"{secret}: outside the run folder, not inlined" in html
    assert "../root-only.png: outside the run folder, not inlined" in html
    assert "link.png: outside the run folder, not inlined" in html
    assert "fifo.png: not inlined (not a regular file)" in html
    assert "huge.png: more than the 40000000 pixels a report inlines" in html
