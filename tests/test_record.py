"""`deskpilot record` driven by a real VNC client on mousepad: the workflow it writes passes
`workflow check` and, run on a fresh sandbox, writes the same file again."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from deskpilot.agent.records.trajectory import load_run
from deskpilot.perception.inputs import InputEvent
from deskpilot.record.compile import Seen, compile_steps
from vnc_client import connect, type_text

DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]
URL = re.compile(r"^vnc://:([A-Za-z0-9]{8})@127\.0\.0\.1:(\d+)$")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _wait_lines(proc, want, timeout=120.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1.0)[0]:
            line = proc.stderr.readline().decode()
            if not line and proc.poll() is not None:
                break
            seen.append(line.rstrip("\n"))
            if want(seen):
                return seen
    raise AssertionError(f"never saw the expected lines: {seen[-10:]}")


def _wait_content(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text() != text:
        assert time.monotonic() < deadline, f"{path} holds {path.read_text()!r}, not {text!r}"
        time.sleep(0.1)


def test_record_on_mousepad_writes_a_workflow_that_reproduces_the_file(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text("")
    proc = subprocess.Popen(DESKPILOT + ["record", "--out", "flow.yaml", "--app", "mousepad work/notes.txt",
                                         "--share", "work", "--size", "1024x700", "--run-dir", "rec"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, bufsize=0)  # unbuffered: select() sees every line
    try:
        lines = _wait_lines(proc, lambda seen: any(line.startswith("recording:") for line in seen))
        password, port = next(URL.match(line).groups() for line in lines if URL.match(line))
        client = connect(int(port), password)
        try:
            client.mouseMove(512, 400)
            client.mousePress(1)
            type_text(client, "hello recorder")
            client.keyPress("enter")
            type_text(client, "line two")
            client.keyPress("ctrl-s")
            _wait_content(notes, "hello recorder\nline two")
        finally:
            client.disconnect()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    flow = yaml.safe_load((tmp_path / "flow.yaml").read_text())
    assert flow["desktop"] == {"size": "1024x700", "apps": ["mousepad work/notes.txt"], "shares": ["work"]}
    steps = flow["steps"]
    assert {"type": "hello recorder\nline two"} in steps and {"key": "ctrl+s"} in steps
    assert any("click" in s for s in steps) and any("wait_for_window" in s for s in steps)
    check = subprocess.run(DESKPILOT + ["workflow", "check", "flow.yaml"], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    run = load_run(tmp_path / "rec")
    assert len(run.humans) == len(steps) and (tmp_path / "rec" / "report.html").is_file()
    notes.write_text("")  # a fresh start: the workflow must write the file again
    replay = subprocess.run(DESKPILOT + ["workflow", "run", "flow.yaml", "--out", "replay"], cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stdout[-1500:] + replay.stderr[-1500:]
    assert notes.read_text() == "hello recorder\nline two"


def _key(keysym: str, char: str = "", state: int = 0, t: float = 0.0) -> Seen:
    return Seen(event=InputEvent(kind="key_press", detail=0, x=0, y=0, state=state, time=t, keysym=keysym,
                                 base_key=keysym.lower(), char=char))


def _click(x: int, y: int, t: float, button: int = 1, windows=None) -> Seen:
    return Seen(event=InputEvent(kind="button_press", detail=button, x=x, y=y, state=0, time=t), windows=windows or {})


def test_compile_rules_typing_backspace_chords_double_clicks_and_titles():
    seen = [_click(100, 50, 0.0, windows={1: "App"}), _click(101, 51, 0.2, windows={1: "*App"}),
            _key("h", "h"), _key("x", "x"), _key("BackSpace"), _key("Shift_L"), _key("I", "I", state=1),
            _key("Return"), _key("s", "s", state=4), _key("F5"),
            _click(500, 350, 2.0, button=3, windows={1: "*App", 2: "Dialog"})]
    steps = [c.step for c in compile_steps(seen, (1000, 700), text_at=lambda frame, x, y: None, initial={1: "App"})]
    assert steps == [{"wait_for_window": "App"}, {"click": [100, 71], "double": True}, {"type": "hI\n"},
                     {"key": "ctrl+s"}, {"key": "f5"}, {"wait_for_window": "Dialog"},
                     {"click": [500, 500], "button": "right"}]


def test_compile_uses_click_text_and_the_element_hook_first():
    from PIL import Image

    frame = Image.new("RGB", (100, 100))
    seen = [Seen(event=_click(10, 10, 0.0).event, frame=frame), Seen(event=_click(50, 50, 5.0).event, frame=frame)]
    steps = compile_steps(seen, (100, 100), text_at=lambda f, x, y: "Save" if x == 10 else None,
                          element_step=lambda item: {"click_element": "button 'OK'"} if item.event.x == 50 else None)
    assert [c.step for c in steps] == [{"click_text": "Save"}, {"click_element": "button 'OK'"}]
    assert json.dumps([c.step for c in steps])  # plain data, ready for YAML


def test_record_refuses_other_outputs_in_one_line(tmp_path):
    done = subprocess.run(DESKPILOT + ["record", "--out", "test_notes.py"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "give --out NAME.yaml" in done.stderr and "Traceback" not in done.stderr
