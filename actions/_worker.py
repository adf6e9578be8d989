"""The per-sandbox worker process that performs actions on ONE display.

Run as ``python -m actions._worker`` with DISPLAY/XAUTHORITY of the sandbox
already in its environment: pyautogui binds to $DISPLAY at import, so the
parent must never import it. Protocol: JSON lines. The worker first prints
``{"ready": true, "size": [w, h]}``; then for each ``{"action": {...}}`` line
on stdin it answers ``{"ok": true}`` or ``{"ok": false, "error": "..."}``.
Mouse actions go through pyautogui; keys and text go through XTEST directly
because pyautogui drops non-ASCII text and types ``>`` for ``<`` on X11.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager

from Xlib import X, XK, display as xdisplay
from Xlib.ext import xtest

from deskpilot.actions.models import Action, action_from_json
from deskpilot.actions.xkeys import key_keysym, text_keysyms

DRAG_STEPS = 12
BUTTON_MASKS = X.Button1Mask | X.Button2Mask | X.Button3Mask | X.Button4Mask | X.Button5Mask
SETTLE_S = 0.05  # lets apps look up keys typed on a spare keycode before it is remapped
REPEAT_GAP_S = 0.003  # between two strokes of one key: a new server timestamp (not autorepeat)


class Keyboard:
    """XTEST keyboard that can type any keysym, remapping spare keycodes when needed.

    A spare keycode keeps its keysym until all spares are in use (then the
    least recently used one is remapped after a settle pause), because apps
    translate a keycode with the CURRENT map when they read the event: remapping
    too early turns already-sent characters into different ones.
    """

    def __init__(self, dpy: xdisplay.Display) -> None:
        self.d = dpy
        self.first = dpy.display.info.min_keycode
        count = dpy.display.info.max_keycode - self.first + 1
        self.rows = [list(r) for r in dpy.get_keyboard_mapping(self.first, count)]
        self.original: dict[int, list[int]] = {}  # spare keycode -> its original row (all zero)
        self.spares = [self.first + i for i, r in enumerate(self.rows) if not any(r) and self.first + i > 8]
        if not self.spares:  # no empty keycode: borrow the highest ones
            self.spares = list(range(self.first + count - 8, self.first + count))
        self.assigned: dict[int, int] = {}  # keysym -> spare keycode, in LRU order
        self.table = self._build_table()
        self.shift = self._keycode_of(XK.XK_Shift_L)

    def _build_table(self) -> dict[int, tuple[int, bool]]:
        table: dict[int, tuple[int, bool]] = {}
        for index in (1, 0):  # index 0 wins (no shift needed), then the lowest keycode
            for i, row in reversed(list(enumerate(self.rows))):
                if len(row) > index and row[index] and self.first + i not in self.spares:
                    table[row[index]] = (self.first + i, index == 1)
        return table

    def _keycode_of(self, keysym: int) -> int:
        return self.table[keysym][0] if keysym in self.table else self._assign([keysym])[keysym]

    def _assign(self, keysyms: list[int]) -> dict[int, int]:
        """Map spare keycodes to keysyms not yet reachable; reuse the LRU spare."""
        out: dict[int, int] = {}
        for keysym in [k for k in keysyms if k in self.assigned]:  # touch first: never evicted
            out[keysym] = self.assigned.pop(keysym)
            self.assigned[keysym] = out[keysym]
        changed: list[int] = []
        for keysym in sorted(k for k in keysyms if k not in out):
            free = [k for k in self.spares if k not in self.assigned.values()]
            keycode = free[0] if free else self.assigned.pop(next(iter(self.assigned)))
            self.original.setdefault(keycode, self.rows[keycode - self.first])
            self.rows[keycode - self.first] = [keysym, keysym] + [0] * (len(self.rows[0]) - 2)
            self.assigned[keysym] = out[keysym] = keycode
            changed.append(keycode)
        self._send_rows(changed)
        return out

    def _send_rows(self, keycodes: list[int]) -> None:
        """One request for the whole spare range, whichever spares changed.

        libX11's XRefreshKeyboardMapping re-reads only the keycodes the
        notifies it has seen name, then forgets every change noted meanwhile,
        including notifies read while it waited for that reply. With scattered
        ranges Tk kept stale (empty) rows for spares named only by such a
        notify and typed them as NoSymbol under load. When every update names
        the same range, each re-read covers every spare, in a state no older
        than the last notify it forgot.
        """
        if not keycodes:
            return
        low, high = min(self.spares), max(self.spares)
        rows = self.rows[low - self.first:high - self.first + 1]
        self.d.change_keyboard_mapping(low, [tuple(r) for r in rows])

    def _stroke(self, keysym: int, extra: dict[int, int]) -> None:
        if keysym in self.table:
            keycode, shifted = self.table[keysym]
        else:
            keycode, shifted = extra[keysym], False
        if shifted:
            xtest.fake_input(self.d, X.KeyPress, self.shift)
        xtest.fake_input(self.d, X.KeyPress, keycode)
        xtest.fake_input(self.d, X.KeyRelease, keycode)
        if shifted:
            xtest.fake_input(self.d, X.KeyRelease, self.shift)

    def type_text(self, text: str) -> None:
        """Type ``text`` in chunks that need at most as many spares as exist."""
        chunk: list[int] = []
        missing: set[int] = set()
        for keysym in text_keysyms(text.replace("\r\n", "\n")):
            if keysym not in self.table and keysym not in missing and len(missing) == len(self.spares):
                self._type_chunk(chunk, missing)
                chunk, missing = [], set()
            if keysym not in self.table:
                missing.add(keysym)
            chunk.append(keysym)
        self._type_chunk(chunk, missing)

    def _type_chunk(self, keysyms: list[int], missing: set[int]) -> None:
        if not keysyms:
            return
        needs_remap = self._make_room(missing)
        extra = self._assign(list(missing))
        if needs_remap:
            self.d.sync()
        previous = None
        for keysym in keysyms:
            keycode = self.table[keysym][0] if keysym in self.table else extra[keysym]
            if keycode == previous:
                # A release and a press of one key at the same server millisecond look like
                # autorepeat: LibreOffice's X11 backend then drops the second 'l' of "Tallinn".
                self.d.sync()
                time.sleep(REPEAT_GAP_S)
            self._stroke(keysym, extra)
            previous = keycode
        self.d.sync()

    def _make_room(self, missing: set[int]) -> bool:
        """True if spares must be remapped; pause first if that evicts recent ones."""
        new = [k for k in missing if k not in self.assigned]
        if len(self.assigned) + len(new) > len(self.spares):
            time.sleep(SETTLE_S)  # keys typed earlier must be read before their spares change
        return bool(new)

    def chord(self, names: list[str]) -> None:
        """Press keys in order, release in reverse; add shift for shifted symbols."""
        with self.held(names):
            pass

    @contextmanager
    def held(self, names: list[str]):
        """Keys down (in order) for the body, then up (in reverse), even if the body fails."""
        if not names:
            yield
            return
        keysyms = [key_keysym(n) for n in names]
        missing = {k for k in keysyms if k not in self.table}
        self._make_room(missing)
        extra = self._assign(list(missing))
        self.d.sync()
        codes: list[int] = []
        for keysym in keysyms:
            keycode, shifted = self.table.get(keysym, (extra.get(keysym), False))
            if keycode is None:
                raise KeyError(f"no keycode for keysym {keysym:#x}")
            if shifted and self.shift not in codes:
                codes.append(self.shift)
            if keycode not in codes:
                codes.append(keycode)
        for keycode in codes:
            xtest.fake_input(self.d, X.KeyPress, keycode)
        self.d.sync()
        try:
            yield
        finally:
            for keycode in reversed(codes):
                xtest.fake_input(self.d, X.KeyRelease, keycode)
            self.d.sync()

    def restore(self) -> None:
        """Give the spare keycodes back their original (empty) rows."""
        if not self.original:
            return
        time.sleep(SETTLE_S)
        for keycode, row in self.original.items():
            self.rows[keycode - self.first] = row
        self._send_rows(list(self.original))
        self.d.sync()
        self.original.clear()
        self.assigned.clear()


class Worker:
    """Performs typed actions on the display named by $DISPLAY."""

    def __init__(self) -> None:
        import pyautogui  # binds to $DISPLAY now, which the parent set for us

        pyautogui.PAUSE = 0
        pyautogui.FAILSAFE = False
        pyautogui.MINIMUM_DURATION = 0
        self.gui = pyautogui
        # pyautogui's own connection to the display (one fewer to open); a fresh one if it has none
        shared = getattr(getattr(pyautogui, "platformModule", None), "_display", None)
        self.keyboard = Keyboard(shared if isinstance(shared, xdisplay.Display) else xdisplay.Display())

    def size(self) -> tuple[int, int]:
        width, height = self.gui.size()
        return int(width), int(height)

    def perform(self, action: Action) -> None:
        handler = getattr(self, f"_do_{action.type}", None)
        if handler is not None:
            # hold_keys: real key presses around the pointer action (ctrl+click adds to a selection)
            with self.keyboard.held(list(getattr(action, "modifiers", []))):
                handler(action)
            self.wait_released()

    def wait_released(self, timeout: float = 1.0) -> None:
        """Return once the server has processed every release we sent.

        A window manager's passive click grab freezes the pointer until it
        replays the press, while keys flow on: text typed right after a click
        would reach the old focus first. Frozen releases are not processed
        yet, so buttons/keys still read as down until the WM lets them through.
        """
        d = self.keyboard.d
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pointer = d.screen().root.query_pointer()
            if not pointer.mask & BUTTON_MASKS and not any(d.query_keymap()):
                return
            time.sleep(0.001)

    def _do_click(self, a) -> None:
        self.gui.click(a.x, a.y, button=a.button)

    def _do_double_click(self, a) -> None:
        self._clicks(a, 2)

    def _do_triple_click(self, a) -> None:
        self._clicks(a, 3)

    def _clicks(self, a, count: int) -> None:
        """`count` clicks at one point, each through the WM's click grab before the next is sent.

        Sent back to back, a later click could land while the window manager
        still held the pointer frozen for the first, and was lost (seen on a
        fresh machine: a double click arriving as one click). A few ms apart
        they stay well inside the toolkit's multi-click time.
        """
        self.gui.moveTo(a.x, a.y)
        for _ in range(count):
            self.gui.click(a.x, a.y)
            self.wait_released()

    def _do_input_text(self, a) -> None:
        """Mobile input_text: click the field, clear it if asked, type, press Enter."""
        self.gui.click(a.x, a.y)
        self.wait_released()
        if a.override:
            self.keyboard.chord(["ctrl", "a"])
            self.keyboard.chord(["backspace"])
        self.keyboard.type_text(a.text)
        self.keyboard.chord(["enter"])

    def _do_hover(self, a) -> None:
        self.gui.moveTo(a.x, a.y)

    def _do_drag(self, a) -> None:
        # Toolkits need real motion between press and release to see a drag.
        self.gui.mouseDown(a.x, a.y)
        time.sleep(0.02)
        for i in range(1, DRAG_STEPS + 1):
            self.gui.moveTo(a.x + (a.to_x - a.x) * i // DRAG_STEPS, a.y + (a.to_y - a.y) * i // DRAG_STEPS)
            time.sleep(0.005)
        time.sleep(0.02)
        self.gui.mouseUp(a.to_x, a.to_y)

    def _do_scroll(self, a) -> None:
        self.gui.moveTo(a.x, a.y)
        sign = 1 if a.direction in ("up", "right") else -1
        if a.direction in ("up", "down"):
            self.gui.scroll(sign * a.amount)
        else:
            self.gui.hscroll(sign * a.amount)

    def _do_key(self, a) -> None:
        self.keyboard.chord(list(a.keys))

    def _do_type(self, a) -> None:
        self.keyboard.type_text(a.text)

    def _do_wait(self, a) -> None:
        time.sleep(a.seconds)

    def close(self) -> None:
        self.keyboard.restore()


def _reply(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main() -> int:
    try:
        worker = Worker()
    except Exception as exc:  # reported to the parent as one line
        _reply({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _reply({"ready": True, "size": list(worker.size())})
    for line in sys.stdin:
        try:
            worker.perform(action_from_json(json.loads(line)["action"]))
            _reply({"ok": True})
        except Exception as exc:
            _reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
