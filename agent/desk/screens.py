"""Comparing frames: settle detection, stuck detection and replay checks."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from PIL import Image, ImageChops

from deskpilot.perception.observation import Observation

_TOLERANCE = 24  # per-channel difference below this is noise (antialiasing, JPEG)


def _small(image: Image.Image) -> Image.Image:
    factor = max(1, min(image.width, image.height) // 270)
    return image.convert("L").reduce(factor) if factor > 1 else image.convert("L")


def similarity(a: Image.Image, b: Image.Image) -> float:
    """Share of (downscaled) pixels that agree, from 0.0 to 1.0.

    Robust to tiny noise; a moved window or a changed layout drops it fast.
    """
    if a.size != b.size:
        return 0.0
    diff = ImageChops.difference(_small(a), _small(b))
    hist = diff.histogram()
    changed = sum(hist[_TOLERANCE:])
    total = sum(hist) or 1
    return 1.0 - changed / total


def same_frame(a: Image.Image, b: Image.Image) -> bool:
    """Exact equality, cheaply (a settled screen repeats byte for byte)."""
    return a.size == b.size and a.tobytes() == b.tobytes()


async def settle(
    grab: Callable[[], Observation],
    *,
    first_delay: float = 0.05,
    interval: float = 0.05,
    cap: float = 2.0,
) -> tuple[Observation, bool]:
    """Wait until two consecutive captures agree or `cap` seconds pass.

    Returns the last frame and whether the screen settled.
    """
    deadline = time.monotonic() + cap
    await asyncio.sleep(first_delay)
    last = grab()
    while time.monotonic() < deadline:
        await asyncio.sleep(interval)
        frame = grab()
        if same_frame(last.image, frame.image):
            return frame, True
        last = frame
    return last, False


def settle_blocking(
    grab: Callable[[], Observation], *, first_delay: float = 0.05, interval: float = 0.05, cap: float = 2.0
) -> tuple[Observation, bool]:
    """`settle` for callers outside an event loop (start-up, replay)."""
    deadline = time.monotonic() + cap
    time.sleep(first_delay)
    last = grab()
    while time.monotonic() < deadline:
        time.sleep(interval)
        frame = grab()
        if same_frame(last.image, frame.image):
            return frame, True
        last = frame
    return last, False
