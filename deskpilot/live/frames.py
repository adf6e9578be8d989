"""A background thread that grabs a sandbox's screen a few times a second.

It opens its own capture connection inside its own thread, so it never shares
an X connection with the loop, and it never sends input: watching cannot
change what the agent sees or does.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from PIL import Image


class FrameGrabber:
    """Calls `on_frame(image, monotonic_time)` about `fps` times a second while `wanted()` says so."""

    def __init__(self, target, fps: float, on_frame: Callable[[Image.Image, float], None],
                 wanted: Callable[[], bool] = lambda: True, name: str = "deskpilot-frames"):
        self._target = target
        self._interval = 1.0 / max(0.5, fps)
        self._on_frame = on_frame
        self._wanted = wanted
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from deskpilot.perception import Capturer

        try:
            capturer = Capturer(self._target)
        except Exception as exc:  # the display went away before we started
            self.error = str(exc)
            return
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                if self._wanted():
                    try:
                        obs = capturer.grab()
                    except Exception as exc:  # display closed under us: stop quietly
                        self.error = str(exc)
                        return
                    self._on_frame(obs.image, obs.timestamp)
                self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))
        finally:
            capturer.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
