"""Reading text off the screen with RapidOCR (the [ocr] extra), no model needed.

The fast, deterministic path for tests and workflows: ``find_text``,
``click_text`` and ``wait_for_text`` work on anything that gives a frame (a PIL
image, an Observation, a Capturer, a desktop with ``screenshot()``). On a desk
whose apps publish an accessibility tree they read the tree first (``a11y.py``,
milliseconds) and OCR only what the tree does not hold; results say ``via``. The ONNX
engine takes ~1 s and a few hundred MB to load, so it is built once per
process and shared (calls are serialised: onnxruntime already uses the cores).
The angle classifier is off: screen text is upright (bench/ocr_per_frame.py
found no measurable time difference either way).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal, Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel

from deskpilot.errors import CheckFailed, UsageError

Box = tuple[int, int, int, int]

_engine = None
_engine_lock = threading.Lock()
_run_lock = threading.Lock()
last_ms: float = 0.0  # how long the latest read took (for progress lines and benchmarks)


class TextBox(BaseModel):
    """A piece of text on screen and where: pixel box (x1, y1, x2, y2), confidence, and which sense read it."""

    text: str
    box: Box
    score: float
    via: Literal["ocr", "a11y"] = "ocr"

    @property
    def center(self) -> tuple[int, int]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) // 2, (y1 + y2) // 2


def engine():
    """The process-wide RapidOCR engine, created on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            try:
                from rapidocr import RapidOCR
            except ImportError:
                raise UsageError("OCR needs the [ocr] extra: pip install 'deskpilot[ocr]'") from None
            _engine = RapidOCR(params={"Global.log_level": "critical", "Global.use_cls": False})
        return _engine


def frame_of(source: Any) -> Image.Image:
    """A PIL image from an image, an Observation, a Capturer (grab) or a desktop (screenshot)."""
    if isinstance(source, Image.Image):
        return source
    if hasattr(source, "image") and isinstance(source.image, Image.Image):
        return source.image
    for method in ("screenshot", "grab"):
        if callable(getattr(source, method, None)):
            return frame_of(getattr(source, method)())
    raise UsageError(f"cannot read the screen from a {type(source).__name__}")


def read_text(source: Any, region: Box | None = None) -> list[TextBox]:
    """Every line of text OCR finds, top to bottom, in screen pixels."""
    global last_ms
    image = frame_of(source)
    ox, oy = 0, 0
    if region is not None:
        image = image.crop(region)
        ox, oy = region[0], region[1]
    ocr = engine()
    started = time.perf_counter()
    with _run_lock:
        out = ocr(np.asarray(image.convert("RGB")), use_cls=False)
    last_ms = (time.perf_counter() - started) * 1000
    if out.txts is None or out.boxes is None:
        return []
    lines = []
    for text, quad, score in zip(out.txts, out.boxes, out.scores):
        xs, ys = [p[0] for p in quad], [p[1] for p in quad]
        box = (int(min(xs)) + ox, int(min(ys)) + oy, int(round(max(xs))) + ox, int(round(max(ys))) + oy)
        lines.append(TextBox(text=str(text), box=box, score=round(float(score), 4)))
    lines.sort(key=lambda t: (t.box[1], t.box[0]))
    return lines


def _compact(text: str) -> list[tuple[str, int]]:
    return [(ch.lower(), i) for i, ch in enumerate(text) if not ch.isspace()]


def match(lines: Sequence[TextBox], text: str) -> list[TextBox]:
    """Lines holding ``text`` (case and spacing ignored), each box narrowed to the matched part."""
    needle = "".join(c for c, _ in _compact(text))
    if not needle:
        raise UsageError("the text to look for is empty")
    found = []
    for line in lines:
        chars = _compact(line.text)
        hay = "".join(c for c, _ in chars)
        pos = hay.find(needle)
        if pos < 0:
            continue
        first, last = chars[pos][1], chars[pos + len(needle) - 1][1] + 1
        x1, y1, x2, y2 = line.box
        per = (x2 - x1) / max(1, len(line.text))
        box = (int(x1 + per * first), y1, int(round(x1 + per * last)), y2)
        found.append(TextBox(text=line.text[first:last], box=box, score=line.score))
    return found


def tree_lines(source: Any, region: Box | None = None) -> list[TextBox] | None:
    """The visible names and texts of the accessibility tree as lines, or None when there is no tree.

    A desk (``a11y_snapshot``) whose apps publish their widgets answers in
    milliseconds where OCR takes seconds; an image, or a desk whose apps
    publish nothing (Tk, xterm), gives None and the caller reads pixels.
    """
    snapshot = getattr(source, "a11y_snapshot", None)
    if not callable(snapshot):
        return None
    from deskpilot.perception.a11y import A11yError

    try:
        snap = snapshot(time_limit=1.0)
    except A11yError:
        return None
    if not snap.apps:
        return None
    lines = []
    for node in snap.nodes:
        if not node.visible or node.box is None:
            continue
        x, y, w, h = node.box
        if region is not None and not (region[0] <= x and x + w <= region[2] and region[1] <= y and y + h <= region[3]):
            continue  # only widgets wholly inside: a text area's box does not say where in it a word is
        for part in dict.fromkeys(p for p in (node.name, node.text or "") if p.strip()):
            lines.append(TextBox(text=part, box=(x, y, x + w, y + h), score=1.0, via="a11y"))
    return lines


def tree_covers(source: Any) -> bool:
    """True when every app the desk started publishes a tree (then text missing from it is not on screen)."""
    names = getattr(source, "app_names", None)
    snapshot = getattr(source, "a11y_snapshot", None)
    if not callable(names) or not callable(snapshot):
        return False
    from deskpilot.perception.a11y import A11yError

    try:
        return len(snapshot(time_limit=1.0).apps) >= len(names()) > 0
    except A11yError:
        return False


def long_text(line: TextBox, text: str = "") -> bool:
    """A widget whose text is a document (several lines, or far longer than what is looked for).

    Its box says nothing about where a word is, nor whether that part is
    scrolled into view: such widgets are left to OCR.
    """
    return "\n" in line.text.strip() or len(line.text) > max(60, 3 * len(text))


def _tree_match(lines: Sequence[TextBox], text: str) -> list[TextBox]:
    """Tree lines holding ``text`` (case and spacing ignored), widgets with a document's text left out."""
    needle = "".join(c for c, _ in _compact(text))
    if not needle:
        raise UsageError("the text to look for is empty")
    return [line for line in lines
            if not long_text(line, text) and needle in "".join(c for c, _ in _compact(line.text))]


def find_text(source: Any, text: str, *, region: Box | None = None) -> list[TextBox]:
    """Where ``text`` is on screen (empty if nowhere), top to bottom: the tree first, then OCR."""
    lines = tree_lines(source, region)
    if lines:
        found = _tree_match(lines, text)
        if found:
            return found
    return match(read_text(source, region), text)


def wait_for_text(source: Any, text: str, *, timeout: float = 10.0, interval: float = 0.2,
                  region: Box | None = None) -> list[TextBox]:
    """Read the screen again until ``text`` shows; CheckFailed after ``timeout`` seconds.

    Each round asks the accessibility tree first (where the apps publish
    one) and OCR only when the tree does not hold the text; each result
    says which sense found it (``via``).
    """
    deadline = time.monotonic() + timeout
    while True:
        tree = tree_lines(source, region)
        if tree and (found := _tree_match(tree, text)):
            return found
        lines = read_text(source, region)
        found = match(lines, text)
        if found:
            return found
        if time.monotonic() >= deadline:
            seen = "; ".join(t.text for t in lines[:12]) or "no text at all"
            raise CheckFailed(f"text {text!r} did not appear within {timeout:g} s (screen shows: {seen})",
                              evidence=[t.model_dump() for t in lines])
        time.sleep(interval)


def click_text(desk: Any, text: str, *, timeout: float = 0.0, index: int = 0,
               region: Box | None = None) -> TextBox:
    """Click the middle of ``text`` on a desktop (one with ``click(x, y)`` or ``perform(action)``)."""
    found = wait_for_text(desk, text, timeout=timeout, region=region)
    if index >= len(found):
        raise CheckFailed(f"text {text!r} is on screen {len(found)} time(s); no match number {index + 1}")
    target = found[index]
    x, y = target.center
    if callable(getattr(desk, "click", None)):
        desk.click(x, y)
    elif callable(getattr(desk, "perform", None)):
        from deskpilot.actions.models import Click

        desk.perform(Click(x=x, y=y))
    else:
        raise UsageError(f"cannot click on a {type(desk).__name__}: it has no click(x, y) or perform(action)")
    return target
