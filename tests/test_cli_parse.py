"""`deskpilot parse`: one raw reply on stdin -> one JSON object, or a short error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from deskpilot.cli.parse_cmd import parse

REPLY = "Drag the file.\n<|begin_of_box|>left_drag(start_box='[100,200]', end_box='[[900,800]]', element_info='a.txt')<|end_of_box|>\nMemory:\n[{\"file\": \"a.txt\"}]"


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("parse")(parse)
    app.command("noop")(lambda: None)  # keeps "parse" a subcommand, as in the hub
    return app


def test_valid_reply_prints_json_with_points(app):
    result = CliRunner().invoke(app, ["parse", "--width", "1280", "--height", "800"], input=REPLY)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["action"] == {"type": "drag", "x": 128, "y": 160, "to_x": 1152, "to_y": 640, "modifiers": []}
    assert data["points"] == [[128, 160], [1152, 640]]
    assert data["model_points"] == [[100.0, 200.0], [900.0, 800.0]]
    assert data["thought"] == "Drag the file."
    assert data["memory"] == [{"file": "a.txt"}]
    assert data["element_info"] == "a.txt"


def test_reasoning_file(app, tmp_path):
    path = tmp_path / "reasoning.txt"
    path.write_text("The file sits at the top left.", encoding="utf-8")
    result = CliRunner().invoke(app, ["parse", "--reasoning-file", str(path)], input="<|begin_of_box|>WAIT()<|end_of_box|>")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["reasoning"] == "The file sits at the top left." and data["action"]["type"] == "wait"
    missing = CliRunner().invoke(app, ["parse", "--reasoning-file", str(tmp_path / "nope.txt")], input="WAIT()")
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_bad_reply_exits_1_with_short_message(app):
    result = CliRunner().invoke(app, ["parse"], input="<|begin_of_box|>left_click(start_box='[1500,20]')<|end_of_box|>")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "error: the start_box must be [x,y] with numbers from 0 to 999"


@pytest.mark.parametrize("args", [["--width", "0"], ["--height", "-5"], ["--width", "wide"]])
def test_bad_size_exits_2(app, args):
    result = CliRunner().invoke(app, ["parse", *args], input="WAIT()")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_through_the_deskpilot_hub():
    command = [sys.executable, "-m", "deskpilot.cli", "parse", "--width", "2560", "--height", "1440"]
    ok = subprocess.run(command, input=REPLY, capture_output=True, text=True, timeout=60)
    if ok.returncode != 0 and "ModuleNotFoundError" in ok.stderr:
        pytest.skip("the hub's other command modules are not written yet")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["points"] == [[256, 288], [2304, 1152]]
    bad = subprocess.run(command, input="nothing to do", capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: no action found")
