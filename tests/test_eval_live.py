"""`deskpilot eval --live`: every running attempt's desktop in one page, in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chromium import Chromium, needs_chromium

REPO = Path(__file__).resolve().parents[1]
COUNTER = REPO / "deskpilot" / "eval" / "example" / "counter.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def box(call: str, thought: str) -> str:
    return f"{thought}\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def slow_counter(tid: str, presses: int, expect: int) -> dict:
    """Press 'Add one' `presses` times with a WAIT() (5 s) between presses: long enough to be watched."""
    script = []
    for n in range(presses):
        script.append(box("left_click(start_box='[350,600]')", f"Press Add one (press {n + 1} of {presses})."))
        script.append(box("WAIT()", "Let the counter show it."))  # after the last press too: it is watched
    script.append(box("DONE()", "Done."))
    return {"id": tid, "task": f"Press Add one {presses} times", "max_steps": 12, "script": script,
            "desktop": {"size": "640x400", "apps": [f"python3 {COUNTER}"]},
            "checks": [{"window_title": f"Counter: {expect}"}]}


@needs_chromium
def test_eval_live_shows_every_running_desktop(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "watched", "tasks": [
        slow_counter("alpha", 3, expect=3),
        slow_counter("beta", 2, expect=99),  # its check fails: the page counts a failure
    ]}))
    with Chromium(1400, 900) as browser:
        proc = subprocess.Popen([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--parallel", "2",
                                 "--out", str(tmp_path / "out"), "--live"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            url = None
            deadline = time.monotonic() + 30
            while url is None and time.monotonic() < deadline:
                found = re.search(r"live view: (http://127\.0\.0\.1:\d+/\S+/)", proc.stderr.readline())
                url = found.group(1) if found else None
            assert url, "no live view URL printed"
            token = url.rstrip("/").rsplit("/", 1)[1]
            assert len(token) >= 20
            with pytest.raises(urllib.error.HTTPError) as denied:  # without the token: nothing
                urllib.request.urlopen(url.replace(token, "x" * len(token)) + "board.json", timeout=5)
            assert denied.value.code == 404
            browser.goto(url)
            # both attempts run at once: two tiles, each with frames from its own desktop
            browser.wait_for("document.querySelectorAll('#grid .tile img[src]').length", lambda n: n == 2, timeout=30.0)
            names = browser.eval("Array.from(document.querySelectorAll('#grid .tile .name')).map(n => n.textContent)")
            assert sorted(names) == ["alpha ~1", "beta ~1"]
            running = browser.eval("window.deskpilotBoard.state")
            assert running["running"] == 2 and all(t["attached"] and t["width"] == 640 for t in running["tiles"])
            # each press changes that desktop's screen: the tile gets new frames
            browser.wait_for("window.deskpilotBoard.frames['alpha~1'] || 0", lambda n: n >= 3, timeout=30.0)
            browser.wait_for("window.deskpilotBoard.frames['beta~1'] || 0", lambda n: n >= 2, timeout=30.0)
            thoughts = browser.eval("Array.from(document.querySelectorAll('#grid .tile pre.thought')).map(n => n.textContent)")
            assert any("Press Add one" in t or "Let the counter" in t for t in thoughts), thoughts
            # the end: counts, and the finished attempts with their status
            final = browser.wait_for("window.deskpilotBoard.state", lambda st: st and st["over"], timeout=30.0)
            assert (final["done"], final["passed"], final["failed"], final["running"]) == (2, 1, 1, 0)
            done = {f["task"]: f["result"] for f in final["finished"]}
            assert done == {"alpha": "PASS", "beta": "FAIL"}
            counts = browser.eval("document.getElementById('counts').textContent")
            assert "2/2 done" in counts and "1 failed" in counts
            pills = browser.eval("Array.from(document.querySelectorAll('#done .pill')).map(n => n.textContent)")
            assert sorted(pills) == ["FAIL", "PASS"]
        finally:
            proc.wait(timeout=90)
    assert proc.returncode == 1  # one attempt failed its check
    with pytest.raises(urllib.error.URLError):  # the evaluation is over: the page is gone
        urllib.request.urlopen(url + "board.json", timeout=2)


def test_eval_live_refuses_ray(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "x", "tasks": [slow_counter("a", 1, 1)]}))
    proc = subprocess.run([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--ray", "auto", "--live"],
                          capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 2 and "with --ray" in proc.stderr
