"""Grab frames of a sandbox's display with mss (XShm; ~3 ms for 1080p).

A ``Capturer`` keeps one mss connection open for the whole run. mss copies
each frame out of its shared-memory segment, and PIL then builds the RGB
image; to stop those 8 MB allocations from costing fresh page faults every
frame we let Pillow keep freed image blocks for reuse (``set_blocks_max``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Protocol

import mss
from mss.exception import ScreenShotError
from PIL import Image

from deskpilot.perception.observation import Observation
from deskpilot.sandbox.xauth import authority

_BLOCKS_TO_KEEP = 8
_blocks_lock = threading.Lock()


from deskpilot.errors import CaptureError  # noqa: E402  (the one-line "display cannot be captured")


class _HasDisplay(Protocol):
    display: str
    xauthority: Path


def _keep_image_blocks() -> None:
    with _blocks_lock:
        if Image.core.get_blocks_max() < _BLOCKS_TO_KEEP:
            Image.core.set_blocks_max(_BLOCKS_TO_KEEP)


def _resolve(target: _HasDisplay | str, xauthority: str | Path | None) -> tuple[str, str | None]:
    if isinstance(target, str):
        return target, str(xauthority) if xauthority else os.environ.get("XAUTHORITY")
    return target.display, str(target.xauthority)


class Capturer:
    """Reusable screen grabber for one display; ``grab()`` returns an Observation."""

    def __init__(self, target: _HasDisplay | str, xauthority: str | Path | None = None) -> None:
        self.display, self._xauthority = _resolve(target, xauthority)
        try:
            with authority(self._xauthority):
                self._sct = mss.MSS(display=self.display)
            self._monitor = dict(self._sct.monitors[0])
        except ScreenShotError as exc:
            raise CaptureError(f"cannot open display {self.display} for capture: {exc}") from None
        self.grabs = 0
        _keep_image_blocks()

    @property
    def mss(self) -> mss.MSS:
        """The one mss instance this capturer reuses."""
        return self._sct

    @property
    def size(self) -> tuple[int, int]:
        return self._monitor["width"], self._monitor["height"]

    def grab(self) -> Observation:
        """One full-screen RGB frame, timestamped with ``time.monotonic()``."""
        start = time.perf_counter()
        try:
            shot = self._sct.grab(self._monitor)
        except ScreenShotError as exc:
            raise CaptureError(f"capture of {self.display} failed: {exc}") from None
        except AssertionError:  # mss 10.2 asserts on the missing reply when the X server went away mid-request
            raise CaptureError(f"capture of {self.display} failed: the X server closed the connection") from None
        stamp = time.monotonic()
        image = Image.frombytes("RGB", shot.size, shot.raw, "raw", "BGRX")
        self.grabs += 1
        return Observation(image=image, timestamp=stamp, display=self.display, grab_ms=(time.perf_counter() - start) * 1000)

    def close(self) -> None:
        """Free the connection; a display that is already gone (Xvfb killed mid-run) is not an error."""
        try:
            self._sct.close()
        except ScreenShotError:
            pass

    def __enter__(self) -> Capturer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def capture(target: _HasDisplay | str, xauthority: str | Path | None = None) -> Observation:
    """One-off frame of a Sandbox (or of a display string with its cookie file)."""
    with Capturer(target, xauthority) as capturer:
        return capturer.grab()
