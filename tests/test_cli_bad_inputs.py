"""Bad command-line inputs through the real CLI: one line, exit code 2, no traceback, no hang (issue 26).

Each case runs `python -m deskpilot.cli` in a subprocess with a timeout (the
FIFO cases hung forever before) and stdin closed. Before this, 11 of these
ended in a traceback and 3 hung.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bombs import write_huge_png
from deskpilot.actions.models import Click
from deskpilot.agent.records.models import EndRecord, Status, StepRecord
from deskpilot.agent.records.trajectory import Trajectory, now_iso

DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]
REPLIES = ["<|begin_of_box|>DONE(answer='x')<|end_of_box|>"]
RUN = ["--size", "320x240", "--quiet"]


def _huge_run(tmp: Path) -> Path:
    run = tmp / "huge-run"
    traj = Trajectory(run)
    traj.write_settings({"task": "t"})
    write_huge_png(run / "step_001.png")
    action = Click(x=1, y=1)
    traj.append(StepRecord(step=1, time=now_iso(), screenshot="step_001.png", screen_size=(15000, 15000),
                           action=action.model_dump(mode="json"), action_text="c()", points=action.points()))
    traj.append(EndRecord(time=now_iso(), status=Status.DONE, steps=1))
    traj.close()
    return run


def _case(name: str, tmp: Path, busy_port: int) -> tuple[list, int, str]:
    """(arguments after `deskpilot`, expected exit code, a piece of the one line)."""
    script = tmp / "replies.json"
    script.write_text(json.dumps(REPLIES))
    fifo = tmp / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    out = str(tmp / "run")
    cases = {
        "bad IPv6 base URL": (["run", "t", "--base-url", "http://[::1", *RUN], 2, "is not a valid URL"),
        "mcp --port -1": (["mcp", "--port", "-1"], 2, "--port -1: a port is 1 to 65535"),
        "mcp --port 70000": (["mcp", "--transport", "http", "--port", "70000"], 2, "--port 70000: a port is 1 to 65535"),
        "mcp --host with spaces": (["mcp", "--transport", "http", "--host", "no such host!"], 2,
                                   "is not an address of this machine"),
        "--live on a busy port": (["run", "t", "--script", str(script), "--live", str(busy_port), "--out", out, *RUN],
                                  2, "Address already in use"),
        "eval --live on a busy port": (["eval", str(tmp / "suite.yaml"), "--live", str(busy_port), "--out", out,
                                        "--quiet"], 2, "Address already in use"),
        "mcp --live on a busy port": (["mcp", "--live", str(busy_port)], 2, "Address already in use"),
        "--live out of range": (["run", "t", "--script", str(script), "--live", "70000"], 2,
                                "Input should be less than or equal to 65535 (see '"),
        "unknown option": (["run", "t", "--no-such-flag"], 2, "No such option: --no-such-flag"),
        "non-UTF-8 --script": (["run", "t", "--script", str(tmp / "latin1.json"), *RUN], 2, "is not UTF-8 text"),
        "non-UTF-8 task": (["run", b"caf\xe9", "--script", str(script), *RUN], 2, "the task b'caf\\xe9' is not UTF-8"),
        "non-UTF-8 --app": (["run", "t", "--app", b"xterm -title caf\xe9", "--script", str(script), *RUN], 2,
                            "--app b'xterm -title caf\\xe9' is not UTF-8"),
        "recursive template": (["run", "t", "--script", str(script), "--prompt-template", str(tmp / "self.j2"),
                                "--out", out, *RUN], 2, "recursion too deep"),
        "FIFO --prompt-template": (["run", "t", "--script", str(script), "--prompt-template", str(fifo), *RUN], 2,
                                   "is not a regular file"),
        "FIFO --output-schema": (["run", "t", "--script", str(script), "--output-schema", str(fifo), *RUN], 2,
                                 "is not a regular file"),
        "folder as --cache": (["run", "t", "--script", str(script), "--cache", str(tmp), *RUN], 2,
                              "is a folder; name a file"),
        # the report is built; the image is shown as missing with its reason (see test_report_images.py)
        "225-Mpx screenshot in report": (["report", str(_huge_run(tmp)) if name.startswith("225") else "-"], 0,
                                         "report: "),
    }
    (tmp / "latin1.json").write_bytes(json.dumps(["caf\u00e9"]).encode("latin-1").replace(b"\\u00e9", b"\xe9"))
    (tmp / "self.j2").write_text("{% include 'self.j2' %}")
    (tmp / "suite.yaml").write_text(json.dumps({"tasks": [{"id": "a", "task": "t", "script": REPLIES}]}))
    return cases[name]


NAMES = ["bad IPv6 base URL", "mcp --port -1", "mcp --port 70000", "mcp --host with spaces", "--live on a busy port",
         "eval --live on a busy port", "mcp --live on a busy port", "--live out of range", "unknown option",
         "non-UTF-8 --script", "non-UTF-8 task", "non-UTF-8 --app", "recursive template", "FIFO --prompt-template",
         "FIFO --output-schema", "folder as --cache", "225-Mpx screenshot in report"]


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_input_is_one_line_and_exit_2(name, tmp_path, busy_port):
    args, code, expected = _case(name, tmp_path, busy_port)
    done = subprocess.run(DESKPILOT + args, capture_output=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    assert "Traceback" not in output, output
    assert done.returncode == code, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], output
    if code == 2:
        assert done.stdout == b"" or b"ERROR" in done.stdout, output  # a usage error goes to stderr
