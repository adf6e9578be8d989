"""What a person does on a sandbox's display, read from the X server itself (the RECORD extension).

Any input path ends in the X server (a VNC client through x11vnc, noVNC,
XTEST), so recording there catches them all, with root coordinates, in order.
A second connection runs the blocking ``record_enable_context`` on its own
thread; ``stop()`` disables the context from the first connection, which ends
that call. Window maps come in the same stream, and ``on_event`` runs on the
thread that reads it, so while it handles an event ``mapped`` holds exactly
the windows mapped before that event, however late it is handled. Key events carry keycodes: ``keysym_name`` turns them into keysym
names with the display's own keyboard mapping (shifted when Shift was held).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pydantic import BaseModel
from Xlib import X, XK
from Xlib.ext import record
from Xlib.protocol import rq

from deskpilot.sandbox.x11 import connect

_KINDS = {X.KeyPress: "key_press", X.KeyRelease: "key_release", X.ButtonPress: "button_press",
          X.ButtonRelease: "button_release"}


class InputEvent(BaseModel):
    """One device event as the X server saw it."""

    kind: str  # key_press, key_release, button_press, button_release
    detail: int  # keycode or button number
    x: int
    y: int
    state: int  # modifier mask before the event (shift 1, lock 2, control 4, mod1/alt 8, mod4/super 64)
    time: float  # monotonic seconds when we read it
    server_time: int = 0  # the X server's timestamp (ms): when it happened, however late it is read
    keysym: str = ""  # the key's name (key events), e.g. "a", "A", "Return", "Control_L"
    base_key: str = ""  # the unshifted key's name, e.g. "s" (for chords like ctrl+shift+s)
    char: str = ""  # the character the key types, "" for none (Return, F5, arrows, modifiers)
    maps: int = 0  # windows mapped (MapNotify) before this event in the server's own order


class InputRecorder:
    """Record key and button events on ``display`` until ``stop()``; ``events`` holds them in order.

    ``on_event(event)`` is called on the recording thread for each event (e.g. to grab the screen at a click).
    """

    def __init__(self, display: str, xauthority: Path | None, on_event=None) -> None:
        self._ctl = connect(display, xauthority)
        self._data = connect(display, xauthority)
        if not self._ctl.has_extension("RECORD"):
            raise RuntimeError("the X server has no RECORD extension")
        self.events: list[InputEvent] = []
        self.maps = 0  # MapNotify events seen so far, in the stream's order with the input
        self.mapped: set[int] = set()  # the windows those mapped (read on this thread: what was mapped before the event)
        self._on_event = on_event
        self._context = self._ctl.record_create_context(0, [record.AllClients], [{
            "core_requests": (0, 0), "core_replies": (0, 0), "ext_requests": (0, 0, 0, 0),
            "ext_replies": (0, 0, 0, 0), "delivered_events": (X.MapNotify, X.MapNotify), "device_events": (X.KeyPress, X.ButtonRelease),
            "errors": (0, 0), "client_started": False, "client_died": False,
        }])
        self._ctl.sync()
        # keycodes of each modifier but Lock (a toggle): (mask, keycodes)
        self._modifiers = [(1 << index, {code for code in codes if code})
                           for index, codes in enumerate(self._ctl.get_modifier_mapping()) if index != 1]
        self._held: set[int] = set()  # modifier keycodes pressed and not yet released, per this stream
        self._thread = threading.Thread(target=self._run, name="deskpilot-xrecord", daemon=True)
        self._started = threading.Event()
        self.error: str | None = None

    def start(self) -> "InputRecorder":
        """Returns once the server records (its start-of-data reply came): no event after this is missed."""
        self._thread.start()
        self._started.wait(10)
        return self

    def _run(self) -> None:
        try:
            self._data.record_enable_context(self._context, self._reply)
        except Exception as exc:  # the display went away: keep what was recorded
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._started.set()

    def _reply(self, reply) -> None:
        if reply.category == record.StartOfData:
            self._started.set()
            return
        if reply.category != record.FromServer or reply.client_swapped or not reply.data:
            return
        data = reply.data
        while data:
            event, data = rq.EventField(None).parse_binary_value(data, self._data.display, None, None)
            if event.type == X.MapNotify:
                self.maps += 1
                self.mapped.add(event.window.id)
                continue
            kind = _KINDS.get(event.type)
            if kind is None:
                continue
            state = event.state | self._held_mask()
            item = InputEvent(kind=kind, detail=event.detail, x=event.root_x, y=event.root_y, state=state,
                              time=time.monotonic(), server_time=event.time, maps=self.maps)
            if kind.startswith("key"):
                self._track(kind, event.detail)
                item.keysym, item.char = keysym_name(self._data, event.detail, state)
                item.base_key = keysym_name(self._data, event.detail, 0)[0]
            self.events.append(item)
            if self._on_event is not None:
                self._on_event(item)

    def _held_mask(self) -> int:
        """The modifiers held before this event, as the stream's own key presses and releases say.

        The event's state field is not enough: a key that comes while a client holds a click with the
        keyboard frozen too (the recorder's own click frames, ``deskpilot.record.presses``) is recorded
        before the server works out its state, and reads as 0 (ctrl+o came out as "o").
        """
        return sum(mask for mask, codes in self._modifiers if codes & self._held)

    def _track(self, kind: str, keycode: int) -> None:
        if not any(keycode in codes for _, codes in self._modifiers):
            return
        if kind == "key_press":
            self._held.add(keycode)
        else:
            self._held.discard(keycode)

    def stop(self) -> list[InputEvent]:
        """End the recording; returns every event seen."""
        try:
            self._ctl.record_disable_context(self._context)
            self._ctl.sync()
        except Exception:  # the display is gone already
            pass
        self._thread.join(10)
        for conn in (self._ctl, self._data):
            try:
                conn.close()
            except Exception:
                pass
        return list(self.events)


def keysym_name(conn, keycode: int, state: int) -> tuple[str, str]:
    """(keysym name, typed character) for ``keycode``, shifted when Shift was held: ('A', 'A'), ('Return', '')."""
    shifted = bool(state & X.ShiftMask)
    keysym = conn.keycode_to_keysym(keycode, 1 if shifted else 0) or conn.keycode_to_keysym(keycode, 0)
    if not keysym:
        return "", ""
    char = ""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        char = chr(keysym)
    elif keysym & 0xFF000000 == 0x01000000:  # Unicode keysyms (how XTEST and VNC type other characters)
        char = chr(keysym & 0xFFFFFF)
    return _NAMES.get(keysym) or char or f"0x{keysym:x}", char


_NAMES = {value: name[3:] for name, value in vars(XK).items() if name.startswith("XK_") and isinstance(value, int)}
for _name in ("space", "Return", "Tab", "BackSpace", "Escape", "Delete"):  # prefer the common spelling
    _NAMES[getattr(XK, "XK_" + _name)] = _name
