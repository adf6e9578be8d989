"""A blinking GTK3 caret is not a change for ``compare_live`` (cached runs, replay, screenshot checks).

GTK3 draws its caret 800 ms on and 400 ms off (measured on mousepad); three frames
0.35 s apart could all fall in one "on" and a cached step taken while it was off
missed. Real mousepad in a real sandbox; the phases are read off the screen.
"""

from __future__ import annotations

import time

from deskpilot import expect
from deskpilot.agent.desk.diff import compare_live
from deskpilot.agent.desk.session import Session

CARET = (3, 56)  # inside the caret at the start of mousepad's empty text area (1280x800, menu bar above)


def _until(desk, dark: bool, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        frame = desk.capturer.grab().image
        if (frame.getpixel(CARET)[0] < 128) == dark:
            return frame
        assert time.monotonic() < deadline, f"the caret never turned {'on' if dark else 'off'}"
        time.sleep(0.005)


def test_a_gtk3_caret_that_just_turned_on_is_not_a_change():
    with Session((1280, 800), apps=["mousepad"]) as desk:
        expect(desk.get_by_role("textbox"), timeout=20).to_be_focused()
        desk.key("end")  # restarts the blinking (GTK stops it 10 s after the last key)
        _until(desk, dark=True)
        baseline = _until(desk, dark=False)  # the caret off
        live = _until(desk, dark=True)  # the caret just turned on: it stays on for 800 ms
        diff, _ = compare_live(baseline, live, lambda: desk.capturer.grab().image)
        assert diff.changed == 0, diff
