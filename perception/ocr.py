"""Reading text off the screen with RapidOCR (the [ocr] extra), no model needed.

The fast, deterministic path for tests and workflows: ``find_text``,
``click_text`` and ``wait_for_text`` work on anything that gives a frame (a PIL
image, an Observation, a Capturer, a desktop with ``screenshot()``). On a desk
whose apps publish an accessibility tree they read the tree first (``a11y.py``,
milliseconds) and OCR only what the tree does not hold; results say ``via``.
Waits look again only when the screen changed (X DAMAGE, ``ScreenChanges``). The ONNX
engine takes ~1 s and a few hundred MB to load, so it is built once per
process and shared (calls are serialised: onnxruntime already uses the cores).
The angle classifier is off: screen text is upright (bench/ocr_per_frame.py
found no measurable time difference either way).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
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
last_kind: str = ""  # how the latest read went: full (detected, new lines recognised) or same (unchanged frame)
last_recognised: int = 0  # lines the latest read had to recognise (the rest came from the cache)
reads: int = 0  # read_text calls in this process (a wait on a still screen adds exactly one)
full_reads: int = 0  # ... of which ran the detector (the rest were frames read lately: a comparison)
_last_reads: "list[tuple[np.ndarray, list[TextBox]]]" = []  # the frames read last, newest first: (pixels, lines)
_FRAMES_KEPT = 3  # a blinking caret alternates between two frames: both stay known (a 1080p frame is 6 MB)
_lines_seen: "OrderedDict[tuple, tuple[str, float]]" = OrderedDict()  # a line's pixels -> (text, score)
_LINES_KEPT = 4096


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
            # native scale always, and each line recognised alone (see _recognise)
            _engine = RapidOCR(params={"Global.log_level": "critical", "Global.use_cls": False,
                                       "Global.max_side_len": 1 << 14, "Det.limit_type": "max",
                                       "Det.limit_side_len": 1 << 14, "Rec.rec_batch_num": 1})
            for model in (_engine._load_det_model(), _engine._load_rec_model()):
                _without_spinning(model.session)
        return _engine


def _without_spinning(wrapper: Any, spinning: bool = False) -> None:
    """Rebuild a model's onnxruntime session with its worker threads sleeping when idle.

    By default the threads spin between the network's operators: on 2 cores that burnt ~25% of a
    detection's CPU (2.9 s -> 2.2 s for a 1080p frame, same boxes) and slowed everything else on the
    machine, for no gain in wall time under load. Same model, same graph optimisations, same outputs.
    ``spinning=True`` restores onnxruntime's default (bench/ocr_incremental.py compares both).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    old = getattr(wrapper, "session", None)
    path = getattr(old, "_model_path", None)  # rapidocr's wrapper keeps it; another version may not: keep its session
    if old is None or not isinstance(path, (str, bytes)) or not hasattr(old, "get_providers"):
        return
    wrapper.session = ort.InferenceSession(path, sess_options=options, providers=old.get_providers())


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


def read_text(source: Any, region: Box | None = None, *, fresh: bool = False) -> list[TextBox]:
    """Every line of text OCR finds, top to bottom, in screen pixels.

    Reads are incremental and exact: an unchanged frame costs a comparison; after a change the detector
    reads only the changed band(s) grown to whole lines (the whole frame when they are large), and only
    the lines whose pixels are new are recognised again. ``last_kind`` says which path answered
    (``same``, ``band``, ``full``); ``fresh=True`` forgets what was read before. A ``region``
    gives the lines whose middle lies in it: a crop read alone splits lines into words and misreads (the
    detector needs the context).
    """
    global last_ms, last_kind, reads, full_reads
    reads += 1
    image = frame_of(source)
    started = time.perf_counter()
    pixels = np.asarray(image.convert("RGB"))
    with _run_lock:
        if fresh:
            _last_reads.clear()
            _lines_seen.clear()
        lines, last_kind = _read_incrementally(pixels)
        full_reads += last_kind == "full"
    last_ms = (time.perf_counter() - started) * 1000
    if region is not None:  # lines whose middle is in the region, read in the frame's full context
        return [t for t in lines if region[0] <= t.center[0] < region[2] and region[1] <= t.center[1] < region[3]]
    return list(lines)


def _detect(pixels: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Text-line quads the detector finds in ``pixels`` (a frame or a band of it), in frame pixels.

    The detector runs at the pixels' own scale, padded (edge pixels repeated) to the multiples of 32 it
    takes: its defaults resize instead (a 1080-row frame to 1088, a region up to 736 rows, which made
    region reads slow and wrong). ``origin``: where the band's top-left corner lies in the frame.
    Callers hold ``_run_lock``.
    """
    det = engine()._load_det_model()
    height, width = pixels.shape[:2]
    pad_h, pad_w = -height % 32, -width % 32
    padded = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else pixels
    tensor = ((padded.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    quads, _ = det.postprocess_op(det.session(tensor), padded.shape[:2])
    if len(quads) == 0:
        return np.zeros((0, 4, 2), dtype=np.float32)
    quads = det.sorted_boxes(np.asarray(quads, dtype=np.float32))
    quads[:, :, 0] += origin[0]
    quads[:, :, 1] += origin[1]
    return quads


def _recognise(pixels: np.ndarray, quads: np.ndarray) -> list[TextBox]:
    """The text of each detected quad, recognising only lines whose pixels were not seen before.

    Recognition depends only on a line's own pixels (one line per batch, so no padding to a neighbour's
    width), so an unchanged line's text is taken from the cache. What is read of a quad is its ink
    (``_line_cut``), not the quad's exact pixels. Callers hold ``_run_lock``.
    """
    global last_recognised
    ocr = engine()
    if len(quads) == 0:
        last_recognised = 0
        return []
    lines = []
    cuts = [_line_cut(pixels, quad) for quad in quads]
    last_recognised = sum(1 for cut in cuts if cut is not None and _key(cut[0]) not in _lines_seen)
    for cut in cuts:
        if cut is None:
            continue
        crop, box = cut
        text, score = _recognise_line(ocr, crop)
        if not text.strip() or score < ocr.text_score:
            continue
        lines.append(TextBox(text=text, box=box, score=round(score, 4)))
    return lines


INK = 60  # a pixel whose channels differ from the line's background by this much in sum is text


def _line_cut(pixels: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, Box] | None:
    """The pixels recognition reads for one detected line, and their box: the line's ink plus a margin.

    The detector's boxes move by a pixel or two with what else is on the screen (its network pools over
    the whole image), and recognition reads a box one pixel off differently ("4319" vs "43i9"). So the
    cut does not follow the box's edges: inside it, the background is the most common colour, the ink
    is what differs, the line is the run of inked rows through the box's middle, and the cut is that
    ink plus a margin of a quarter of its height. Whatever the jitter, a line gives the same cut (and
    text, and box) in a full read and in a read of only the changed band. None: no ink.
    """
    height, width = pixels.shape[:2]
    x1, y1 = max(0, int(np.floor(quad[:, 0].min()))), max(0, int(np.floor(quad[:, 1].min())))
    x2, y2 = min(width, int(np.ceil(quad[:, 0].max()))), min(height, int(np.ceil(quad[:, 1].max())))
    area = pixels[y1:y2, x1:x2].astype(np.int16)
    if area.size == 0:
        return None
    packed = (area[:, :, 0].astype(np.int32) << 16) | (area[:, :, 1].astype(np.int32) << 8) | area[:, :, 2]
    values, counts = np.unique(packed, return_counts=True)
    bg = int(values[counts.argmax()])
    background = np.array([bg >> 16, (bg >> 8) & 255, bg & 255], dtype=np.int16)
    ink = np.abs(area - background).sum(axis=2) > INK
    rows = ink.any(axis=1)
    middle = (y2 - y1) // 2
    if not rows.any():
        return None
    if rows[middle]:
        top = middle
        while top > 0 and rows[top - 1]:
            top -= 1
        bottom = middle + 1
        while bottom < len(rows) and rows[bottom]:
            bottom += 1
    else:
        inked = np.flatnonzero(rows)
        top, bottom = int(inked[0]), int(inked[-1]) + 1
    cols = np.flatnonzero(ink[top:bottom].any(axis=0))
    left, right = int(cols[0]), int(cols[-1]) + 1
    margin = max(2, (bottom - top) // 4)
    box = (max(0, x1 + left - margin), max(0, y1 + top - margin),
           min(width, x1 + right + margin), min(height, y1 + bottom + margin))
    return np.ascontiguousarray(pixels[box[1]:box[3], box[0]:box[2]]), box


def _key(crop: np.ndarray) -> tuple:
    return crop.shape, hashlib.blake2b(crop.tobytes(), digest_size=16).digest()


def _recognise_line(ocr, crop: np.ndarray) -> tuple[str, float]:
    key = _key(crop)
    known = _lines_seen.get(key)
    if known is not None:
        _lines_seen.move_to_end(key)
        return known
    from rapidocr.ch_ppocr_rec import TextRecInput

    out = ocr.text_rec(TextRecInput(img=[crop]))
    known = (str(out.txts[0]), float(out.scores[0]))
    _lines_seen[key] = known
    if len(_lines_seen) > _LINES_KEPT:
        _lines_seen.popitem(last=False)
    return known


BAND_MARGINS = (32, 128)  # context the detector sees around a changed band: a little, then more if a line ran out
PLAIN_CHANGES = 4  # colour changes a row/column may have and still bound a band (see _plain)
BAND_MAX_SHARE = 0.3  # a change whose band covers more of the frame than this is detected whole


def _read_incrementally(pixels: np.ndarray) -> tuple[list[TextBox], str]:
    """(lines, kind): kind is ``same`` (a frame read lately), ``band`` (only the changed part detected)
    or ``full`` (the whole frame detected).

    The last few frames are kept, not just one: a screen whose only change is a blinking caret
    alternates between two frames, and a wait woken by each blink must not detect the frame again.
    """
    global last_recognised
    for n, (seen, lines) in enumerate(_last_reads):
        if seen.shape == pixels.shape and np.array_equal(seen, pixels):
            _last_reads.insert(0, _last_reads.pop(n))
            last_recognised = 0
            return lines, "same"
    engine()._load_rec_model()
    banded = _read_bands(pixels, *_last_reads[0]) if _last_reads and _last_reads[0][0].shape == pixels.shape else None
    lines, kind = (banded, "band") if banded is not None else (_recognise(pixels, _detect(pixels)), "full")
    lines.sort(key=lambda t: (t.box[1], t.box[0]))
    _last_reads.insert(0, (pixels, lines))
    del _last_reads[_FRAMES_KEPT:]
    return lines, kind


def _read_bands(pixels: np.ndarray, before: np.ndarray, known: list[TextBox]) -> list[TextBox] | None:
    """The lines of ``pixels`` detected only where they differ from ``before`` (read as ``known``).

    Each changed area grows until it holds whole text lines (``_grow``), the detector reads it with
    ``BAND_MARGINS`` pixels of context, and its lines replace the known lines whose middle lies in it;
    known lines elsewhere are kept as they were. None when the change is too large to be worth it
    (then the caller detects the whole frame).
    """
    changed = np.any(pixels != before, axis=2)
    height, width = changed.shape
    boxes = _changed_boxes(changed)
    while True:  # grown boxes may meet; joined ones grow again
        grown = _merge_boxes([_grow(pixels, box, known) for box in boxes])
        if grown == boxes:
            break
        boxes = grown
    if sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) > BAND_MAX_SHARE * height * width:
        return None
    quads = []
    for band in boxes:
        found = next((q for margin in BAND_MARGINS if (q := _band_quads(pixels, band, margin)) is not None), None)
        if found is None:
            return None
        quads.extend(found)
    inside = lambda t: any(b[0] <= t.center[0] < b[2] and b[1] <= t.center[1] < b[3] for b in boxes)  # noqa: E731
    kept = [t for t in known if not inside(t)]
    fresh = _recognise(pixels, np.asarray(quads, dtype=np.float32).reshape(-1, 4, 2))
    if not _agrees(fresh, [t for t in known if inside(t)], changed):
        return None
    return kept + fresh


def _agrees(fresh: list[TextBox], replaced: list[TextBox], changed: np.ndarray) -> bool:
    """True when every replaced line whose pixels did not change is found again, same box, same text.

    A band's detector sees less than the whole frame and may group words differently (mousepad's menu
    bar read as one line where the frame gives three); unchanged text inside the band is the witness.
    """
    found = {(t.box, t.text) for t in fresh}
    for line in replaced:
        x1, y1, x2, y2 = line.box
        if not changed[y1:y2, x1:x2].any() and (line.box, line.text) not in found:
            return False
    return True


def _band_quads(pixels: np.ndarray, band: Box, margin: int) -> list[np.ndarray] | None:
    """The lines detected in ``band`` read with ``margin`` pixels of context, or None if one runs out of it.

    With too little context the detector may join a line in the band to text beside it (a label and
    the field typed in: "Name Ada Lovelace", where the whole frame gives two lines); such a line's ink
    reaches past the band, which the band's plain edges rule out for a line the whole frame would give.
    """
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = band
    ox, oy = max(0, (x1 - margin) // 32 * 32), max(0, (y1 - margin) // 32 * 32)
    ex, ey = min(width, x2 + margin), min(height, y2 + margin)
    quads = []
    for quad in _detect(pixels[oy:ey, ox:ex], (ox, oy)):
        if not (x1 <= quad[:, 0].mean() < x2 and y1 <= quad[:, 1].mean() < y2):
            continue
        cut = _line_cut(pixels, quad)
        if cut is not None:
            bx1, by1, bx2, by2 = cut[1]
            slack = (by2 - by1) // 3 + 2
            if bx1 < x1 - slack or by1 < y1 - slack or bx2 > x2 + slack or by2 > y2 + slack:
                return None
        quads.append(quad)
    return quads


def _changed_boxes(changed: np.ndarray, gap: int = 8) -> list[Box]:
    """Bounding boxes of the changed pixels, one per run of changed rows (runs closer than ``gap`` join)."""
    rows = np.flatnonzero(changed.any(axis=1))
    if len(rows) == 0:
        return []
    cuts = np.flatnonzero(np.diff(rows) > gap)
    out = []
    for part in np.split(rows, cuts + 1):
        y1, y2 = int(part[0]), int(part[-1]) + 1
        cols = np.flatnonzero(changed[y1:y2].any(axis=0))
        out.append((int(cols[0]), y1, int(cols[-1]) + 1, y2))
    return out


def _grow(pixels: np.ndarray, box: Box, known: list[TextBox]) -> Box:
    """``box`` grown until its edges lie on plain rows/columns (``_plain``) and it holds every known line
    whose core (the middle half of its height) it touches: so no text line is cut by the band."""
    height, width = pixels.shape[:2]
    x1, y1, x2, y2 = box
    while True:
        before = (x1, y1, x2, y2)
        for t in known:
            bx1, by1, bx2, by2 = t.box
            q = (by2 - by1) // 4
            if bx1 < x2 and x1 < bx2 and by1 + q < y2 and y1 < by2 - q:
                x1, y1, x2, y2 = min(x1, bx1), min(y1, by1), max(x2, bx2), max(y2, by2)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        while y1 > 0 and not _plain(pixels[y1 - 1, x1:x2]):
            y1 -= 1
        while y2 < height and not _plain(pixels[y2, x1:x2]):
            y2 += 1
        while x1 > 0 and not _plain(pixels[y1:y2, x1 - 1]):
            x1 -= 1
        while x2 < width and not _plain(pixels[y1:y2, x2]):
            x2 += 1
        if (x1, y1, x2, y2) == before:
            return before


def _plain(strip: np.ndarray) -> bool:
    """No text crosses this row/column: at most 4 colour changes along it (a widget's or window's
    borders, each a change in and out; text crossing it changes colour at each stroke)."""
    return len(strip) < 2 or int(np.count_nonzero(np.any(strip[1:] != strip[:-1], axis=1))) <= PLAIN_CHANGES


def _merge_boxes(boxes: list[Box]) -> list[Box]:
    """Boxes with touching ones joined (two bands detected apart must not share a line)."""
    boxes = list(boxes)
    joined = True
    while joined:
        joined = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    joined = True
                    break
            if joined:
                break
    return boxes


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


class WaitStats(BaseModel):
    """How the latest ``wait_for_text`` went: how it learnt of changes, how often it woke and read."""

    method: Literal["damage", "frames", "none"]  # none: timeout 0, one read and no waiting
    wakes: int = 0  # times the screen (the region) changed and the wait looked again
    reads: int = 0  # OCR reads (``read_text`` calls) it made: 1 on a screen that never changed
    full_reads: int = 0  # ... of which ran the detector (not a frame read lately, e.g. a caret's other phase)
    seconds: float = 0.0


last_wait: WaitStats | None = None
QUIET_S = 0.05  # after a change, look again once nothing was drawn for this long (the app finished painting)
QUIET_CAP_S = 0.5  # ... but no later than this after the change (a caret blinking or an animation never stops)


class ScreenChanges:
    """Blocks until the screen (or the part a wait reads) changed since the last read.

    On a live desk (a Session, a Capturer: anything with a display that ``grab``s or
    ``screenshot``s) it listens to X DAMAGE (``perception/damage.py``): the X server says
    when anything was drawn, so a wait costs no CPU and no grabs while the screen is still,
    and wakes within milliseconds of the drawing, whereas a tiled frame hash would grab and
    hash a 6 MB frame every interval and notice a change only at the next tick. Damage
    outside the region being read is ignored. The watcher is opened BEFORE the first read,
    so nothing drawn between that read and the wait is missed.

    The fallback, for a source without a display (an image, an Observation) or an X server
    without DAMAGE, grabs every ``interval`` seconds and compares the pixels (of the region)
    with the frame last read: still no OCR until they differ.
    """

    def __init__(self, source: Any, region: Box | None, interval: float) -> None:
        self.source, self.region, self.interval = source, region, interval
        self.watcher = None
        self.wakes = 0
        where = _display_of(source)
        if where is not None:
            from deskpilot.errors import CaptureError
            from deskpilot.perception.damage import DamageWatcher

            try:
                self.watcher = DamageWatcher(*where)
            except CaptureError:  # no DAMAGE, or the display is not ours to open: compare frames
                self.watcher = None
        self.method: Literal["damage", "frames"] = "damage" if self.watcher is not None else "frames"

    def wait(self, deadline: float, last: Image.Image) -> bool:
        """True once the screen changed (then settled a moment); False at ``deadline`` with no change.

        ``last``: the frame read last (what the frame fallback compares with).
        """
        changed = self._damage(deadline) if self.watcher is not None else self._frames(deadline, last)
        self.wakes += changed
        return changed

    def _touches(self, rect) -> bool:
        if self.region is None:
            return True
        x1, y1, x2, y2 = self.region
        return rect.x < x2 and x1 < rect.x + rect.width and rect.y < y2 and y1 < rect.y + rect.height

    def _damage(self, deadline: float) -> bool:
        assert self.watcher is not None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if any(self._touches(d.rect) for d in self.watcher.poll(left)):
                break
        cap = time.monotonic() + QUIET_CAP_S
        while time.monotonic() < cap and self.watcher.poll(QUIET_S):
            pass
        return True

    def _frames(self, deadline: float, last: Image.Image) -> bool:
        before = _cut(np.asarray(last.convert("RGB")), self.region)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.interval, left))
            now = _cut(np.asarray(frame_of(self.source).convert("RGB")), self.region)
            if now.shape != before.shape or not np.array_equal(now, before):
                return True

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()

    def __enter__(self) -> "ScreenChanges":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _display_of(source: Any) -> tuple[str, str | None] | None:
    """(display, cookie file) of a live source (a Session, a Capturer), None for a still frame."""
    if not any(callable(getattr(source, m, None)) for m in ("screenshot", "grab")):
        return None  # an Image or an Observation: its display may change, the frame never will
    sandbox = getattr(source, "sandbox", None)
    display = getattr(sandbox, "display", None) or getattr(source, "display", None)
    if not isinstance(display, str):
        return None
    cookie = (getattr(sandbox, "xauthority", None) or getattr(source, "xauthority", None)
              or getattr(source, "_xauthority", None))
    return display, str(cookie) if cookie else None


def _cut(pixels: np.ndarray, region: Box | None) -> np.ndarray:
    if region is None:
        return pixels
    x1, y1, x2, y2 = region
    return pixels[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]


def wait_for_text(source: Any, text: str, *, timeout: float = 10.0, interval: float = 0.1,
                  region: Box | None = None) -> list[TextBox]:
    """Look until ``text`` shows, looking again only when the screen changed; CheckFailed after ``timeout`` s.

    Each look asks the accessibility tree first (where the apps publish one)
    and OCR only when the tree does not hold the text; each result says which
    sense found it (``via``). Between looks the wait sleeps until something is
    drawn (``ScreenChanges``: X DAMAGE on a live desk, a pixel comparison every
    ``interval`` s otherwise), so a still screen is read once however long the
    wait; ``last_wait`` says how it went.
    """
    global last_wait
    started = time.monotonic()
    deadline = started + timeout
    reads_before, full_before = reads, full_reads
    changes = ScreenChanges(source, region, interval) if timeout > 0 else None
    try:
        while True:
            tree = tree_lines(source, region)
            if tree and (found := _tree_match(tree, text)):
                return found
            frame = frame_of(source)  # kept: a failure carries the very frame that was read
            lines = read_text(frame, region)
            found = match(lines, text)
            if found:
                return found
            if changes is None or not changes.wait(deadline, frame):
                seen = "; ".join(t.text for t in lines[:12]) or "no text at all"
                raise CheckFailed(f"text {text!r} did not appear within {timeout:g} s (screen shows: {seen})",
                                  evidence=[t.model_dump() for t in lines], screen=frame)
    finally:
        last_wait = WaitStats(method=changes.method if changes is not None else "none",
                              wakes=changes.wakes if changes is not None else 0, reads=reads - reads_before,
                              full_reads=full_reads - full_before,
                              seconds=round(time.monotonic() - started, 3))
        if changes is not None:
            changes.close()


def click_text(desk: Any, text: str, *, timeout: float = 0.0, index: int = 0,
               region: Box | None = None) -> TextBox:
    """Click the middle of ``text`` on a desktop (one with ``click(x, y)`` or ``perform(action)``)."""
    found = wait_for_text(desk, text, timeout=timeout, region=region)
    if index >= len(found):
        raise CheckFailed(f"text {text!r} is on screen {len(found)} time(s); no match number {index + 1}",
                          evidence=[t.model_dump() for t in found])
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
