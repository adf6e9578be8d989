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


def test_keys_typed_while_a_click_is_held_keep_their_modifiers(sandbox):
    """A client holding clicks in a synchronous grab (as the recorder and openbox do) freezes the keys
    after a click too; the server records them before it works out their state. ctrl+o and shift+a typed
    then must still come out as ctrl+o and "A", not "o" and "a"."""
    from Xlib import X

    holder = x11.connect(sandbox.display, sandbox.xauthority)
    holder.screen().root.grab_button(1, X.AnyModifier, False, X.ButtonPressMask, X.GrabModeSync, X.GrabModeSync,
                                     X.NONE, X.NONE)
    holder.sync()
    conn = x11.connect(sandbox.display, sandbox.xauthority)
    recorder = InputRecorder(sandbox.display, sandbox.xauthority).start()
    try:
        code = lambda name: conn.keysym_to_keycode(XK.string_to_keysym(name))  # noqa: E731
        xtest.fake_input(conn, X.ButtonPress, 1)
        xtest.fake_input(conn, X.ButtonRelease, 1)
        for name, modifier in (("o", "Control_L"), ("a", "Shift_L")):
            xtest.fake_input(conn, X.KeyPress, code(modifier))
            xtest.fake_input(conn, X.KeyPress, code(name))
            xtest.fake_input(conn, X.KeyRelease, code(name))
            xtest.fake_input(conn, X.KeyRelease, code(modifier))
        conn.sync()
        holder.next_event()  # the held press: the keys behind it are frozen until it goes on
        deadline = time.monotonic() + 30
        while len([e for e in recorder.events if e.kind == "key_press"]) < 4:
            assert time.monotonic() < deadline, recorder.events
            time.sleep(0.01)
        frozen = [(e.keysym, e.state) for e in recorder.events if e.kind == "key_press"]
        holder.allow_events(X.ReplayPointer, X.CurrentTime)
        holder.sync()
    finally:
        recorder.stop()
        conn.close()
        holder.close()
    assert frozen[1] == ("o", X.ControlMask), frozen
    assert frozen[3] == ("A", X.ShiftMask), frozen
