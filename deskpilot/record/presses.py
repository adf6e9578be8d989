"""The screen as it was when a left button went down, before the app saw the click.

The recorder learns of a click from the X RECORD stream and used to grab the
screen when its handler got round to it: on a loaded machine that was late
enough for the frame to show what the click caused (a menu over the point, a
typed password in the field), and ``click_text`` was read off the wrong screen.
Here a passive grab of the left button on the root window, in synchronous mode,
makes the X server hold each left press (and the keys after it) while the screen
is grabbed; then the press is replayed and reaches the app as if nothing had
happened. A click while an app holds the pointer (an open menu) is not seen
here: the recorder falls back to a frame grabbed on the spot.
"""

from __future__ import annotations

import select
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

_KEPT = 8  # frames kept (a 1080p frame is 6 MB); the recorder asks for each within moments


class PressFrames:
    """``start()``, then ``frame_at(server_time)`` for each left press; ``stop()`` lets the pointer go."""

    def __init__(self, display: str, xauthority: str | Path) -> None:
        self.display, self.xauthority = display, Path(xauthority)
        self._frames: "OrderedDict[int, Image.Image]" = OrderedDict()
        self._seen = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.active = False  # the grab is in place (another client may own the button: then never)
        self.error = ""

    def start(self) -> "PressFrames":
        from Xlib import X, error as xerror

        from deskpilot.perception.capture import Capturer
        from deskpilot.sandbox import x11

        self._conn = x11.connect(self.display, self.xauthority)
        self._capturer = Capturer(self.display, self.xauthority)
        catch = xerror.CatchError(xerror.BadAccess)
        self._conn.screen().root.grab_button(1, X.AnyModifier, False, X.ButtonPressMask, X.GrabModeSync,
                                             X.GrabModeSync, X.NONE, X.NONE, onerror=catch)
        self._conn.sync()
        if catch.get_error() is not None:
            self.error = "another client holds the left button on the root window"
            self._close()
            return self
        self.active = True
        self._thread = threading.Thread(target=self._serve, name="record-presses", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        from Xlib import X

        conn = self._conn
        try:
            while not self._stop.is_set():
                if not conn.pending_events() and not select.select([conn.fileno()], [], [], 0.1)[0]:
                    continue
                while conn.pending_events():
                    event = conn.next_event()
                    if event.type == X.ButtonPress:
                        self._take(event)
        except Exception as exc:  # the display went away: the recorder falls back to frames on the spot
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.active = False
            self._close()  # the grab goes with the connection: no press is ever left held
            with self._seen:
                self._seen.notify_all()

    def _take(self, event) -> None:
        """Grab the screen while the press is held, then let the press go on to where it was going."""
        from Xlib import X

        frame = None
        try:
            frame = self._capturer.grab().image
        except Exception as exc:  # no frame for this press (the recorder grabs one on the spot); the next may work
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._conn.allow_events(X.ReplayPointer, X.CurrentTime)
            self._conn.flush()
        if frame is None:
            return
        with self._seen:
            self._frames[int(event.time)] = frame
            while len(self._frames) > _KEPT:
                self._frames.popitem(last=False)
            self._seen.notify_all()

    def frame_at(self, server_time: int, timeout: float = 0.5) -> Image.Image | None:
        """The frame grabbed while the press of that time was held; None if it was not caught here."""
        with self._seen:
            self._seen.wait_for(lambda: server_time in self._frames or not self.active, timeout)
            return self._frames.get(server_time)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close()

    def _close(self) -> None:
        for part in (getattr(self, "_capturer", None), getattr(self, "_conn", None)):
            try:
                if part is not None:
                    part.close()
            except Exception:
                pass
