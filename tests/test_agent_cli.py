"""The CLI people run: demo, run with a script, report, replay, and a run killed mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskpilot.cli import app
from deskpilot.agent.records.report import build_report
from deskpilot.agent.records.trajectory import load_run

runner = CliRunner()
DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]


def box(call: str) -> str:
    return f"Next step.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    result = runner.invoke(app, ["demo", "--out", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    return run_dir


def test_demo_completes_and_checks_the_saved_file(demo_run):
    saved = demo_run / "output" / "form.json"
    assert json.loads(saved.read_text()) == {"name": "Ada Lovelace", "email": "ada@example.org"}
    assert (demo_run / "report.html").is_file()
    assert load_run(demo_run).end.status.value == "DONE"


def test_replay_reproduces_the_recorded_run(demo_run):
    saved = demo_run / "output" / "form.json"
    saved.unlink()
    result = runner.invoke(app, ["replay", str(demo_run)])
    assert result.exit_code == 0, result.output
    assert "without divergence" in result.output
    assert json.loads(saved.read_text()) == {"name": "Ada Lovelace", "email": "ada@example.org"}


def test_replay_detects_a_changed_app(demo_run):
    from deskpilot.demo import DEMO_APP

    changed = f"/usr/bin/python3 {DEMO_APP} --save-to {demo_run / 'output' / 'x.json'} --layout changed"
    result = runner.invoke(app, ["replay", str(demo_run), "--app", changed])
    assert result.exit_code == 1
    assert "step 1: the screen differs" in result.output
    assert not (demo_run / "output" / "x.json").exists()


def test_run_with_a_script_and_exit_codes(tmp_path):
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([box("left_click(start_box='[500,500]')"), box("FAIL()")]))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "do it", "--app", "xterm", "--script", str(script), "--size", "1024x768",
                                 "--out", str(out), "--quiet", "--instructions", "Prefer the keyboard."])
    assert result.exit_code == 1, result.output  # FAIL -> 1
    run = load_run(out)
    assert run.settings["instructions"] == "Prefer the keyboard."
    assert run.steps[0].points == [(512, 384)]
    assert run.end.status.value == "FAIL"
    assert (out / "report.html").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "x", "--size", "huge"], "WIDTHxHEIGHT"),
        (["run", "x"], "no model"),
        (["run", "x", "--script", "/nonexistent/replies.json"], "does not exist"),
        (["run", "x", "--app", "no-such-program-xyz", "--script", "r.json"], "not installed"),
        (["report", "/nonexistent/run"], "not a run folder"),
        (["locate", "/nonexistent.png", "the button", "--script", "r.json"], "does not exist"),
    ],
)
def test_user_mistakes_give_one_line_errors(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_locate_and_ask_on_an_image_file(tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    Image.new("RGB", (1000, 500), "white").save(shot)
    script = tmp_path / "r.json"
    script.write_text(json.dumps(["The button is here <|begin_of_box|>[100,200,300,400]<|end_of_box|>"]))
    result = runner.invoke(app, ["locate", str(shot), "the button", "--script", str(script)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"box": [100, 100, 300, 200], "center": [200, 150]}
    script.write_text(json.dumps(["<think>look</think>It says Hello."]))
    result = runner.invoke(app, ["ask", str(shot), "what does it say?", "--script", str(script)])
    assert result.exit_code == 0 and "It says Hello." in result.stdout and "look" not in result.stdout


def test_a_run_killed_mid_way_leaves_a_loadable_trajectory(tmp_path):
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([box("left_click(start_box='[500,500]')")] + [box("WAIT()")] * 10))
    out = tmp_path / "run"
    proc = subprocess.Popen(DESKPILOT + ["run", "wait around", "--app", "xterm", "--script", str(script),
                                         "--size", "800x600", "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    traj = out / "trajectory.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if traj.is_file() and traj.read_text().count('"kind": "step"') >= 3:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    run = load_run(out)
    assert len(run.steps) >= 3 and run.end is None
    assert run.steps[0].points == [(400, 300)] and run.steps[1].action.type == "wait"
    html = build_report(out).read_text()
    assert "INCOMPLETE" in html and html.count('class="step"') == len(run.steps)


def test_an_app_that_dies_at_start_is_reported_with_its_output(tmp_path):
    script = tmp_path / "r.json"
    script.write_text(json.dumps([box("DONE()")]))
    started = time.monotonic()
    result = runner.invoke(app, ["run", "x", "--app", "/bin/sh -c 'echo boom >&2; exit 4'", "--script", str(script),
                                 "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert "exited with code 4 before showing a window: boom" in result.output
    assert time.monotonic() - started < 10  # not the whole start-up timeout


def test_secrets_stay_off_the_terminal_and_replay_needs_them(tmp_path, monkeypatch):
    from deskpilot.demo import DEMO_APP

    secret = "S3cr3t-pässwörd!"
    monkeypatch.setenv("MYPW", secret)
    share = tmp_path / "share"
    share.mkdir()
    script = tmp_path / "r.json"
    script.write_text(json.dumps([box("left_click(start_box='[500,300]')"), box(f"type(content='{secret}')"),
                                  box("left_click(start_box='[500,580]')"), f"<|begin_of_box|>DONE('{secret}')<|end_of_box|>"]))
    out = tmp_path / "run"
    app_cmd = f"/usr/bin/python3 {DEMO_APP} --save-to {share / 'form.json'}"
    result = runner.invoke(app, ["run", "log in", "--app", app_cmd, "--share", str(share), "--script", str(script),
                                 "--size", "1280x800", "--out", str(out), "--secret", "MYPW"])
    assert result.exit_code == 0, result.output
    assert secret not in result.output and "***MYPW***" in result.output
    assert json.loads((share / "form.json").read_text())["name"] == secret
    (share / "form.json").unlink()
    monkeypatch.delenv("MYPW")
    refused = runner.invoke(app, ["replay", str(out)])
    assert refused.exit_code == 2 and "export them" in refused.output
    monkeypatch.setenv("MYPW", secret)
    again = runner.invoke(app, ["replay", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((share / "form.json").read_text())["name"] == secret
    reused = runner.invoke(app, ["run", "log in", "--app", app_cmd, "--share", str(share), "--script", str(script),
                                "--out", str(out), "--secret", "MYPW"])
    assert reused.exit_code == 2 and "already holds a run" in reused.output
