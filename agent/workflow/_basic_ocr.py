"""Stand-in OCR for workflow steps until deskpilot.perception.ocr is installed (issue 10).

RapidOCR (the [ocr] extra) reads the settled screen; a text matches when it is
inside one OCR line, case and spaces ignored. Remove once perception/ocr.py is merged.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from deskpilot.errors import CheckFailed, UsageError

_engine = None
_lock = threading.Lock()


def _read(image) -> list[tuple[str, tuple[int, int, int, int]]]:
    global _engine
    with _lock:
        if _engine is None:
            try:
                from rapidocr import RapidOCR
            except ImportError:
                raise UsageError("click_text and wait_for_text need the [ocr] extra: pip install 'deskpilot[ocr]'") from None
            _engine = RapidOCR(params={"Global.log_level": "critical", "Global.use_cls": False})
        out = _engine(np.asarray(image.convert("RGB")), use_cls=False)
    if out.txts is None or out.boxes is None:
        return []
    lines = []
    for text, quad in zip(out.txts, out.boxes):
        xs, ys = [p[0] for p in quad], [p[1] for p in quad]
        lines.append((str(text), (int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys)))))
    return sorted(lines, key=lambda line: (line[1][1], line[1][0]))


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


def find(desk, text: str, timeout: float, region=None) -> list[tuple[str, tuple[int, int, int, int]]]:
    """OCR lines holding ``text`` (screen pixels), retried until ``timeout``; CheckFailed if it never shows."""
    needle = _squash(text)
    deadline = time.monotonic() + timeout
    ox, oy = (region[0], region[1]) if region else (0, 0)
    while True:
        image = desk.observe().image
        lines = [(t, (x1 + ox, y1 + oy, x2 + ox, y2 + oy))
                 for t, (x1, y1, x2, y2) in _read(image.crop(region) if region else image)]
        found = [line for line in lines if needle in _squash(line[0])]
        if found:
            return found
        if time.monotonic() >= deadline:
            seen = "; ".join(t for t, _ in lines[:12]) or "no text at all"
            raise CheckFailed(f"text {text!r} did not appear within {timeout:g} s (screen shows: {seen})")
        time.sleep(0.2)
