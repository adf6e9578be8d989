"""Screen-change events from the X DAMAGE extension.

Comparing frames can only tell that two grabs are equal; it cannot tell
whether the app is still about to paint. DAMAGE makes the X server report
every area drawn on the screen (the root window's damage includes all the
windows on it), so a waiter can sleep until something is drawn and then
until nothing has been drawn for a short while, without grabbing a frame.

Damage is reported as delta rectangles (areas newly damaged since the last
``DamageSubtract``); after each batch the damage is subtracted so the next
drawing is reported again. Pointer motion draws nothing here (Xvfb keeps the
cursor out of the framebuffer), so it never counts as a change.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

from Xlib import display as xdisplay, error as xerror
from Xlib.ext import damage as xdamage

from deskpilot.errors import CaptureError


class Rect(NamedTuple):
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def within(self, other: "Rect") -> bool:
        return (other.x <= self.x and other.y <= self.y
                and self.x + self.width <= other.x + other.width
                and self.y + self.height <= other.y + other.height)


@dataclass(frozen=True)
class Damage:
    """One reported area, when this process read it (``time.monotonic()``) and the X server's time of it (ms)."""

    when: float
    rect: Rect
    server_ms: int = 0


class DamageUnavailable(CaptureError):
    """The display has no DAMAGE extension (callers fall back to comparing frames)."""


class DamageWatcher:
    """Collects damage of one display's root window on its own X connection.

    Not thread-safe: one caller at a time (the loop awaits each settle).
    """

    def __init__(self, display: str, xauthority: str | Path | None = None) -> None:
        from deskpilot.sandbox.x11 import connect

        try:
            self._conn = connect(display, Path(xauthority) if xauthority else None)
        except Exception as exc:  # Xlib raises several unrelated types when it cannot connect
            raise CaptureError(f"cannot open display {display} to watch for changes: {exc}") from None
        if not self._conn.has_extension("DAMAGE"):
            self._conn.close()
            raise DamageUnavailable(f"display {display} has no DAMAGE extension")
        self.display = display
        self._conn.damage_query_version()
        self._notify = self._conn.extension_event.DamageNotify
        self._damage = self._conn.screen().root.damage_create(xdamage.DamageReportDeltaRectangles)
        self._conn.damage_subtract(self._damage)  # start from an empty region: only new drawing is reported
        self._conn.sync()
        self.size = (self._conn.screen().width_in_pixels, self._conn.screen().height_in_pixels)
        self.events = 0
        self.others: list[Callable[[Any], None]] = []  # called in order with the connection's other events
        self._drain()  # creating the damage object reports the whole screen once: not a change
        self.events = 0

    @classmethod
    def for_sandbox(cls, sandbox) -> "DamageWatcher":
        return cls(sandbox.display, getattr(sandbox, "xauthority", None))

    def fileno(self) -> int:
        return self._conn.fileno()

    @property
    def connection(self) -> xdisplay.Display:
        """The X connection the damage arrives on (perception.windows selects window events on it)."""
        return self._conn

    def poll(self, timeout: float = 0.0) -> list[Damage]:
        """Damage reported so far, waiting up to ``timeout`` s for the first if there is none."""
        found = self._drain()
        if found or timeout <= 0:
            return found
        ready, _, _ = select.select([self._conn.fileno()], [], [], timeout)
        return self._drain() if ready else []

    def _drain(self) -> list[Damage]:
        found: list[Damage] = []
        try:
            while self._conn.pending_events():
                event = self._conn.next_event()
                if event.type == self._notify:  # python-xlib clones the event class: compare codes
                    area = event.area
                    found.append(Damage(time.monotonic(), Rect(area.x, area.y, area.width, area.height), event.timestamp))
                else:  # window events selected on this connection (perception.windows): same order as the drawing
                    for other in self.others:
                        other(event)
            if found:
                self._conn.damage_subtract(self._damage)
                self._conn.flush()
        except (xerror.ConnectionClosedError, OSError) as exc:
            raise CaptureError(f"lost the connection to {self.display} while watching for changes: {exc}") from None
        self.events += len(found)
        return found

    def close(self) -> None:
        try:
            self._conn.damage_destroy(self._damage)
            self._conn.close()
        except Exception:  # the display may already be gone; nothing left to free
            pass

    def __enter__(self) -> "DamageWatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bounding(rects: Iterable[Rect]) -> Rect | None:
    """The smallest rectangle holding all ``rects`` (None for none)."""
    rects = list(rects)
    if not rects:
        return None
    x1 = min(r.x for r in rects)
    y1 = min(r.y for r in rects)
    x2 = max(r.x + r.width for r in rects)
    y2 = max(r.y + r.height for r in rects)
    return Rect(x1, y1, x2 - x1, y2 - y1)
