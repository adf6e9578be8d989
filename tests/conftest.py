"""Shared sandbox fixtures: a real Xvfb + openbox display per test.

``sandbox`` gives a 1280x800 Sandbox (apps under bubblewrap) that is closed
after the test. ``solid_window`` shows a borderless window of one colour at a
known place (Tk, override-redirect, so the window manager does not move it)
and waits until it is on screen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from deskpilot.perception import Capturer
from deskpilot.sandbox import App, Sandbox

SOLID_WINDOW = """
import sys, tkinter
x, y, w, h, colour = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry(f"{w}x{h}+{x}+{y}")
root.configure(background=colour)
root.mainloop()
"""


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh 1280x800 sandbox, closed after the test."""
    with Sandbox((1280, 800)) as sb:
        yield sb


def wait_for_colour(capturer: Capturer, xy: tuple[int, int], rgb: tuple[int, int, int], timeout: float = 10.0) -> None:
    """Grab until pixel ``xy`` has colour ``rgb``; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while capturer.grab().image.getpixel(xy) != rgb:
        if time.monotonic() > deadline:
            pytest.fail(f"pixel {xy} on {capturer.display} never became {rgb}")
        time.sleep(0.05)


@pytest.fixture
def solid_window() -> Callable[..., App]:
    """Factory: ``solid_window(sb, (x, y, w, h), (r, g, b))`` -> the Tk App, once visible."""

    def show(sb: Sandbox, box: tuple[int, int, int, int], rgb: tuple[int, int, int]) -> App:
        x, y, w, h = box
        colour = "#%02x%02x%02x" % rgb
        app = sb.launch(["/usr/bin/python3", "-c", SOLID_WINDOW, str(x), str(y), str(w), str(h), colour])
        with Capturer(sb) as capturer:
            wait_for_colour(capturer, (x + w // 2, y + h // 2), rgb)
        return app

    return show


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs of the given size (``tmpfs("256k")``); skipped where mounting is not allowed."""
    mounts = []

    def mount(size: str):
        folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def kill_owner_after_report(script: str) -> dict:
    """Run ``script`` (it prints one JSON line once it owns things), SIGKILL it, return what it printed."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        return json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
