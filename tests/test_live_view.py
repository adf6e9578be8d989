"""The live view in a real headless Chromium, and the run video, on a real sandbox."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request

import pytest

from chromium import Chromium, needs_chromium
from deskpilot.actions.models import Click
from deskpilot.agent.loop.events import RunEnded, StepDecided, StepStarted
from deskpilot.live import LiveView
from deskpilot.agent.records.models import StepRecord

BLINKER = """
import tkinter
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry("300x200+700+100")
colours = ["#0000ff", "#00ff00"]
def flip(i=0):
    root.configure(background=colours[i % 2])
    root.after(100, flip, i + 1)
flip()
root.mainloop()
"""


def _pixel_js(x: int, y: int) -> str:
    """The colour the page's <img> shows at screen pixel (x, y), read back through a canvas."""
    return f"""(() => {{ const img = document.getElementById('screen');
        if (!img.naturalWidth) return null;
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData({x}, {y}, 1, 1).data.slice(0, 3)); }})()"""


def _close(colour, rgb) -> bool:
    return colour is not None and all(abs(a - b) < 40 for a, b in zip(colour, rgb))  # JPEG


@needs_chromium
def test_live_page_follows_the_screen_and_the_loop(sandbox, solid_window):
    with LiveView(fps=8) as live:
        assert live.url.startswith("http://127.0.0.1:") and len(live.token) >= 20
        with pytest.raises(urllib.error.HTTPError) as denied:  # without the token: nothing
            urllib.request.urlopen(live.url.replace(live.token, "x" * len(live.token)) + "state.json")
        assert denied.value.code == 404
        live.attach(sandbox)
        solid_window(sandbox, (100, 100, 300, 200), (255, 0, 0))
        click = Click(x=250, y=200)
        live.publish(StepStarted(step=3, max_steps=30))  # the loop's typed events
        live.publish(StepDecided(step=3, max_steps=30,
                                 record=StepRecord(step=3, time="t", thought="Press the <b>red</b> box", action=click,
                                                   points=click.points(), action_text="left_click(start_box='[195,250]')")))
        with Chromium(1400, 900) as browser:
            browser.goto(live.url)
            browser.wait_for(_pixel_js(250, 200), lambda c: _close(c, (255, 0, 0)))
            assert browser.eval("document.getElementById('step').textContent") == "step 3 / 30"
            assert browser.eval("document.getElementById('thought').textContent") == "Press the <b>red</b> box"
            assert browser.eval("document.querySelectorAll('#marks circle').length") == 1
            assert browser.eval("document.querySelector('#marks circle').getAttribute('cx')") == "250"
            # the screen changes: the page follows, at several frames a second
            sandbox.launch(["/usr/bin/python3", "-c", BLINKER])
            browser.wait_for(_pixel_js(850, 200), lambda c: _close(c, (0, 0, 255)) or _close(c, (0, 255, 0)))
            before = browser.eval("window.deskpilotLive.frames")
            time.sleep(2.0)
            frames = browser.eval("window.deskpilotLive.frames") - before
            assert frames >= 4, f"only {frames} new frames in 2 s"
            live.publish(RunEnded(status="DONE", answer="42"))
            browser.wait_for("document.getElementById('phase').textContent", lambda t: t == "DONE")
            assert "42" in browser.eval("document.getElementById('result').textContent")
    with pytest.raises(urllib.error.URLError):  # stopped: the port is closed
        urllib.request.urlopen(live.url + "state.json", timeout=2)


def test_record_a_video_of_the_screen(sandbox, solid_window, tmp_path):
    av = pytest.importorskip("av")
    from deskpilot.live.record import Recorder

    target = tmp_path / "run.mp4"
    recorder = Recorder(target, fps=10)
    recorder.attach(sandbox)
    solid_window(sandbox, (0, 0, 400, 300), (255, 0, 0))
    time.sleep(0.6)
    click = Click(x=600, y=400)
    recorder.publish(StepDecided(step=1, max_steps=30, record=StepRecord(step=1, time="t", points=click.points(),
                                                                         action=click, action_text="left_click(...)")))
    solid_window(sandbox, (0, 0, 400, 300), (0, 0, 255))
    time.sleep(0.6)
    assert recorder.close() == target
    with av.open(str(target)) as video:
        frames = [f.to_image() for f in video.decode(video=0)]
    assert len(frames) >= 8 and frames[0].size == (1280, 800)
    colours = [f.getpixel((200, 150)) for f in frames]
    red = [i for i, c in enumerate(colours) if _close(c, (255, 0, 0))]
    blue = [i for i, c in enumerate(colours) if _close(c, (0, 0, 255))]
    assert red and blue and max(red) < min(blue) and blue[-1] == len(frames) - 1, colours  # in the order it happened
    # the click mark is drawn in the frames after the step event: red ring pixels at (600 + r - 1, 400)
    r = max(8, 1280 // 90)
    assert any(f.getpixel((600 + r - 1, 400))[0] > 150 and f.getpixel((600 + r - 1, 400))[2] < 120 for f in frames[-5:])


def test_run_with_live_and_record_from_the_cli(tmp_path):
    av = pytest.importorskip("av")
    import json

    from typer.testing import CliRunner

    from deskpilot.cli import app

    script = tmp_path / "replies.json"
    script.write_text(json.dumps([
        "Click.\n<|begin_of_box|>left_click(start_box='[500,500]')<|end_of_box|>\nMemory:\n[]",
        "Type.\n<|begin_of_box|>type(content='ls')<|end_of_box|>\nMemory:\n[]",
        "Done.\n<|begin_of_box|>DONE()<|end_of_box|>\nMemory:\n[]"]))
    video = tmp_path / "run.gif"
    result = CliRunner().invoke(app, ["run", "click", "--app", "xterm", "--size", "640x480", "--script", str(script),
                                      "--out", str(tmp_path / "run"), "--live", "--record", str(video)])
    assert result.exit_code == 0, result.output
    assert "live view: http://127.0.0.1:" in result.output and f"video: {video}" in result.output
    with av.open(str(video)) as gif:
        frames = list(gif.decode(video=0))
    assert len(frames) >= 5 and (frames[0].width, frames[0].height) == (640, 480)
    bad = CliRunner().invoke(app, ["run", "x", "--script", str(script), "--record", str(tmp_path / "run.avi")])
    assert bad.exit_code == 2 and "use a .mp4, .webm or .gif" in bad.output


def test_a_workflow_run_can_be_watched_live(tmp_path):
    import json
    import re
    import subprocess

    flow = tmp_path / "flow.yaml"
    flow.write_text("""name: watched
desktop:
  size: 800x600
  apps: ["xterm"]
steps:
  - wait_for_window: "xterm"
  - type: "echo watched"
  - sleep: 3
""")
    proc = subprocess.Popen([sys.executable, "-m", "deskpilot.cli", "workflow", "run", str(flow), "--live",
                             "--out", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            found = re.search(r"live view: (\S+)", proc.stderr.readline())
            url = found.group(1) if found else None
        assert url, "no live view URL printed"
        state: dict = {}
        while time.monotonic() < deadline:  # the desktop opens, frames flow, the workflow's steps show
            state = json.loads(urllib.request.urlopen(url + "state.json", timeout=5).read())
            if state["attached"] and state["frame"] >= 1 and "workflow step 2 ok" in state["phase"]:
                break
            time.sleep(0.2)
        assert state["attached"] and state["frame"] >= 1 and state["width"] == 800, state
        assert "echo watched" in state["phase"]
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0


@needs_chromium
def test_the_page_keeps_the_final_screen_and_result_after_the_run(sandbox, solid_window):
    """The run ends: a watching page still gets the last frame and the result for a few seconds, then stops asking."""
    import json
    import threading

    live = LiveView(fps=8).start()
    live.attach(sandbox)
    solid_window(sandbox, (100, 100, 300, 200), (255, 0, 0))
    with Chromium(1400, 900) as browser:
        browser.goto(live.url)
        browser.wait_for(_pixel_js(250, 200), lambda c: _close(c, (255, 0, 0)))
        live.publish(RunEnded(status="DONE", answer="42"))
        said: list[str] = []
        stopper = threading.Thread(target=lambda: said.append(f"waited {live.finish(linger=4, say=said.append):.1f}"))
        stopper.start()
        browser.wait_for("document.getElementById('fps').textContent",
                         lambda t: t == "the run has ended: this is its final screen")
        assert stopper.is_alive()  # still serving: the run's process would still be up
        state = json.loads(urllib.request.urlopen(live.url + "state.json", timeout=2).read())
        assert state["ended"] and state["status"] == "DONE" and state["answer"] == "42" and not state["attached"]
        frame = urllib.request.urlopen(live.url + "frame.jpg", timeout=2)
        assert frame.status == 200 and frame.headers["Content-Type"] == "image/jpeg"
        polls = browser.eval("window.deskpilotLive.polls")
        assert browser.eval("document.getElementById('phase').textContent") == "DONE"
        assert _close(browser.eval(_pixel_js(250, 200)), (255, 0, 0))  # the final frame stays on the page
        stopper.join(10)
        assert browser.eval("window.deskpilotLive.polls") == polls  # ended: it stopped asking
    assert said[0] == "live view: the final screen and result stay on the page for 4 s"
    assert said[1].startswith("waited 4.")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(live.url + "state.json", timeout=2)


def test_a_run_nobody_watches_ends_without_waiting(sandbox):
    live = LiveView().start()
    live.attach(sandbox)
    started = time.monotonic()
    assert live.finish(linger=30) == 0.0 and time.monotonic() - started < 5
