"""The X RECORD reader orders window maps with the input: an event read late still knows what was mapped before it."""

from __future__ import annotations

import threading
import time

from Xlib import XK
from Xlib.ext import xtest

from deskpilot.perception.inputs import InputRecorder
from deskpilot.sandbox import x11

DIALOG_ON_O = """
import tkinter
root = tkinter.Tk()
root.title("main")
root.geometry("300x200+10+10")
def dialog(_event):
    top = tkinter.Toplevel(root)
    top.title("opened by o")
root.bind("<o>", dialog)
root.focus_force()
root.mainloop()
"""


def _press(conn, name: str) -> None:
    code = conn.keysym_to_keycode(XK.string_to_keysym(name))
    xtest.fake_input(conn, 2, code)  # KeyPress
    xtest.fake_input(conn, 3, code)  # KeyRelease
    conn.sync()


def test_a_key_read_late_still_comes_before_the_window_it_opened(sandbox):
    sandbox.launch(["/usr/bin/python3", "-c", DIALOG_ON_O])
    sandbox.wait_for_window("main", timeout=30)
    conn = x11.connect(sandbox.display, sandbox.xauthority)
    seen: list[tuple[str, int, list[str]]] = []
    handled = threading.Event()

    def slow(event) -> None:  # a loaded machine: the handler reads the windows long after the key
        if event.kind != "key_press":
            return
        time.sleep(1.0)
        titles = [x11.window_title(conn, wid) for wid in x11.client_windows(conn)]
        seen.append((event.keysym, event.maps, titles))
        handled.set()

    recorder = InputRecorder(sandbox.display, sandbox.xauthority, on_event=slow).start()
    try:
        _press(conn, "o")
        sandbox.wait_for_window("opened by o", timeout=30)
        assert handled.wait(30)
        handled.clear()
        _press(conn, "Escape")
        assert handled.wait(30)
    finally:
        recorder.stop()
        conn.close()
    (first, maps_o, titles_o), (second, maps_esc, _) = seen
    assert (first, second) == ("o", "Escape")
    assert "opened by o" in titles_o  # read late, the window list already shows the dialog ...
    assert maps_esc > maps_o  # ... but only the second key comes after a map in the server's order
