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
            # native scale always (detection and recognition are driven piece by piece: _detect, _recognise_new)
            _engine = RapidOCR(params={"Global.log_level": "critical", "Global.use_cls": False,
                                       "Global.max_side_len": 1 << 14, "Det.limit_type": "max",
                                       "Det.limit_side_len": 1 << 14, "Rec.rec_batch_num": 1})
            for model in (_engine._load_det_model(), _engine._load_rec_model()):
                _without_spinning(model.session)
        return _engine


def _without_spinning(holder: Any) -> None:
    """Reopen a model's onnxruntime session with its worker threads sleeping between runs.

    By default they spin for a while after each run, waiting for more work: on a 2-core desk that
    burnt 5-20% of a cold read's CPU and most of an unchanged screen's (bench/RESULTS.md, session 9),
    and took the cores from the apps being read. Wall time is unchanged. Left as is if rapidocr's
    wrapper changes shape.
    """
    import onnxruntime as ort

    session = getattr(holder, "session", None)
    path = getattr(session, "_model_path", None)
    if not isinstance(session, ort.InferenceSession) or not path:
        return
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    holder.session = ort.InferenceSession(path, sess_options=options, providers=session.get_providers())


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

    A "line" is what the detector boxed: a line, or in dense text a word or a few (``match`` looks across
    neighbours on a row). Reads are incremental and exact: an unchanged frame costs a comparison, after a
    change only the bands' parts whose pixels changed are detected again and only new pieces recognised,
    and the result equals a read from scratch. ``last_kind`` says which path answered; ``fresh=True``
    forgets what was read before. A ``region`` gives the lines whose middle lies in it, read in the
    frame's context (a crop read alone would cut bands differently).
    """
    global last_ms, last_kind, reads, full_reads
    reads += 1
    image = frame_of(source)
    started = time.perf_counter()
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))  # no extra 6 MB copy
    with _run_lock:
        if fresh:
            _last_reads.clear()
            _lines_seen.clear()
            _parts_seen.clear()
        lines, last_kind = _read_incrementally(pixels)
        full_reads += last_kind == "full"
    last_ms = (time.perf_counter() - started) * 1000
    if region is not None:  # lines whose middle is in the region, read in the frame's full context
        return [t for t in lines if region[0] <= t.center[0] < region[2] and region[1] <= t.center[1] < region[3]]
    return list(lines)


def _recognise(pixels: np.ndarray) -> list[TextBox]:
    """Detection band by band (``_detect``), then recognition of each piece of text not seen before
    (``_recognise_new``: a piece's text depends on its own pixels only, so an unchanged piece's text is
    taken from the cache). Callers hold ``_run_lock``.
    """
    ocr = engine()
    height, width = pixels.shape[:2]
    pad_h, pad_w = -height % 32, -width % 32
    padded = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else pixels
    quads = _detect(padded)
    if not quads:
        return []
    global last_recognised
    keys = _recognise_new(ocr, ocr.crop_text_regions(padded, quads))
    last_recognised = _recognised_now
    lines = []
    for quad, key in zip(quads, keys):
        text, score = _lines_seen[key]
        if not text.strip() or score < ocr.text_score:
            continue
        xs = [min(float(p[0]), width) for p in quad]
        ys = [min(float(p[1]), height) for p in quad]
        box = (int(min(xs)), int(min(ys)), int(round(max(xs))), int(round(max(ys))))
        lines.append(TextBox(text=text, box=box, score=round(score, 4)))
    return lines


BAND_ROWS = 224  # rows of the frame each band answers for
BAND_CONTEXT = 16  # rows the detector also sees above and below them (edge rows repeated at the frame's borders)
_PART_GAP = 64  # this many blank columns split a band into parts detected apart
_PART_SIDE = 32  # blank columns kept on each side of a part
_parts_seen: "OrderedDict[tuple, np.ndarray]" = OrderedDict()  # a part's pixels -> its boxes, in its own pixels
_PARTS_KEPT = 512
last_detected: int = 0  # parts the latest read had to detect (the rest came from the cache)


def _detect(padded: np.ndarray) -> list[np.ndarray]:
    """Text boxes of a frame (padded to multiples of 32), found band by band: a pure function of the pixels.

    The detector (PP-OCR's DB net) weighs each pixel against statistics of the whole image it is
    given, so one given a whole 1080p screen under-reads sparse text (on a mostly empty mousepad
    window it found 1 of 5 lines) and any change anywhere moves every box. Here it sees bands of
    ``BAND_ROWS`` rows (plus ``BAND_CONTEXT`` above and below), each cut at wide runs of blank columns
    into parts, and keeps the boxes whose middle lies in the band's own rows. A part's boxes depend on
    its pixels alone, so they are cached by those pixels: after a change only the parts that hold
    changed pixels are detected again, and the result is exactly what a read from scratch finds.
    Blank parts cost nothing. The price: pieces of dense text can come out word by word (``match``
    joins neighbours on a row).
    """
    global last_detected
    detector = engine()._load_det_model()
    rows, context = BAND_ROWS, BAND_CONTEXT
    height = padded.shape[0]
    source = np.pad(padded, ((context, context + (-height % rows)), (0, 0), (0, 0)), mode="edge")
    quads: list[np.ndarray] = []
    last_detected = 0
    for top in range(0, height, rows):
        band = source[top:top + rows + 2 * context]
        for x1, x2 in _parts(band):
            part = np.ascontiguousarray(band[:, x1:x2])
            key = _key(part)
            found = _parts_seen.get(key)
            if found is None:
                last_detected += 1
                out = detector(part)
                found = np.zeros((0, 4, 2), np.float32) if out.boxes is None else np.asarray(out.boxes, np.float32)
                _parts_seen[key] = found
                if len(_parts_seen) > _PARTS_KEPT:
                    _parts_seen.popitem(last=False)
            else:
                _parts_seen.move_to_end(key)
            for quad in found:
                quad = quad + np.array([x1, top - context], np.float32)
                if top <= (quad[:, 1].min() + quad[:, 1].max()) / 2 < top + rows:
                    quads.append(quad)
    return quads


def _parts(band: np.ndarray) -> list[tuple[int, int]]:
    """Column spans of a band worth detecting: runs of non-blank columns, split at wide blank gaps.

    A blank column is one colour over the band's rows (background, a border): it holds no text.
    Spans are widened by ``_PART_SIDE`` and aligned to 32 columns (the detector's stride).
    """
    width = band.shape[1]
    busy = np.flatnonzero(~(band == band[:1]).all(axis=(0, 2)))
    if busy.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(busy) > _PART_GAP)
    starts = np.concatenate(([busy[0]], busy[cuts + 1]))
    ends = np.concatenate((busy[cuts], [busy[-1]]))
    spans: list[tuple[int, int]] = []
    for start, end in zip(starts, ends):
        x1 = max(0, int(start) - _PART_SIDE) // 32 * 32
        x2 = min(width, -(-(int(end) + 1 + _PART_SIDE) // 32) * 32)
        if spans and x1 <= spans[-1][1]:
            spans[-1] = (spans[-1][0], x2)
        else:
            spans.append((x1, x2))
    return spans


def _key(crop: np.ndarray) -> tuple:
    return crop.shape, hashlib.blake2b(crop.tobytes(), digest_size=16).digest()


_REC_HEIGHT = 48  # the recogniser's input height
_REC_STEP = 32  # input widths are rounded up to a multiple of this, at least _REC_MIN_WIDTH
_REC_MIN_WIDTH = 96
_REC_BATCH = 16


def _rec_width(crop: np.ndarray) -> int:
    height, width = crop.shape[:2]
    scaled = -(-_REC_HEIGHT * width // max(1, height))
    return max(_REC_MIN_WIDTH, -(-scaled // _REC_STEP) * _REC_STEP)


_recognised_now = 0  # pieces the latest _recognise_new had to recognise


def _recognise_new(ocr, crops: list[np.ndarray]) -> list[tuple]:
    """Recognise the pieces not seen before into ``_lines_seen``; returns every piece's cache key.

    Each piece is scaled to the recogniser's height and padded to its own width rounded up to
    ``_REC_STEP`` (not to 320 columns, rapidocr's default, which made a short word cost as much as a
    line); pieces of the same padded width go through the network together. A piece's text thus depends
    on its pixels alone, whatever it is batched with, so the cache stays exact.
    """
    global _recognised_now
    recogniser = ocr._load_rec_model()
    todo: dict[int, dict[tuple, np.ndarray]] = {}
    keys = [_key(crop) for crop in crops]
    for key, crop in zip(keys, crops):
        if key in _lines_seen:
            _lines_seen.move_to_end(key)
        else:
            todo.setdefault(_rec_width(crop), {})[key] = crop
    for width, group in todo.items():
        items = list(group.items())
        for start in range(0, len(items), _REC_BATCH):
            batch = items[start:start + _REC_BATCH]
            ratio = width / _REC_HEIGHT
            inputs = np.stack([recogniser.resize_norm_img(crop, ratio) for _, crop in batch]).astype(np.float32)
            texts, _ = recogniser.postprocess_op(recogniser.session(inputs), False, max_wh_ratio=ratio,
                                                 wh_ratio_list=[c.shape[1] / max(1, c.shape[0]) for _, c in batch])
            for (key, _), (text, score) in zip(batch, texts):
                _lines_seen[key] = (str(text), float(score))
    while len(_lines_seen) > max(_LINES_KEPT, 2 * len(crops)):  # never what this read still needs
        _lines_seen.popitem(last=False)
    _recognised_now = sum(len(group) for group in todo.values())
    return keys


def _read_incrementally(pixels: np.ndarray) -> tuple[list[TextBox], str]:
    """(lines, kind): kind is ``same`` (a frame read lately, pixel for pixel) or ``full`` (detected again).

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
    lines = _recognise(pixels)
    lines.sort(key=lambda t: (t.box[1], t.box[0]))
    _last_reads.insert(0, (pixels, lines))
    del _last_reads[_FRAMES_KEPT:]
    return lines, "full"


def _compact(text: str) -> list[tuple[str, int]]:
    return [(ch.lower(), i) for i, ch in enumerate(text) if not ch.isspace()]


def match(lines: Sequence[TextBox], text: str) -> list[TextBox]:
    """Where ``text`` is (case and spacing ignored), each box narrowed to the matched part.

    The text may run across neighbouring pieces on one row (the detector boxes dense text word by
    word): each row of neighbours is searched as one, and every occurrence is returned.
    """
    needle = "".join(c for c, _ in _compact(text))
    if not needle:
        raise UsageError("the text to look for is empty")
    found = []
    for row in _rows(lines):
        chars = [(ch, n, i) for n, piece in enumerate(row) for ch, i in _compact(piece.text)]
        hay = "".join(ch for ch, _, _ in chars)
        pos = hay.find(needle)
        while pos >= 0:
            (_, a, start), (_, b, end) = chars[pos], chars[pos + len(needle) - 1]
            parts = row[a:b + 1]
            box = (_char_edge(row[a], start), min(p.box[1] for p in parts),
                   _char_edge(row[b], end + 1), max(p.box[3] for p in parts))
            if a == b:
                shown = row[a].text[start:end + 1]
            else:
                shown = " ".join([row[a].text[start:], *(p.text for p in parts[1:-1]), row[b].text[:end + 1]])
            found.append(TextBox(text=shown, box=box, score=min(p.score for p in parts)))
            pos = hay.find(needle, pos + len(needle))
    return found


def _char_edge(piece: TextBox, index: int) -> int:
    """The x where character ``index`` of a piece starts (its box shared evenly by its characters)."""
    x1, _, x2, _ = piece.box
    return int(round(x1 + (x2 - x1) * index / max(1, len(piece.text))))


def _rows(lines: Sequence[TextBox]) -> list[list[TextBox]]:
    """Pieces chained left to right with their neighbours: same height band, a gap under one height."""
    rows: list[list[TextBox]] = []
    for piece in sorted(lines, key=lambda t: t.box[0]):
        for row in rows:
            if _follows(row[-1], piece):
                row.append(piece)
                break
        else:
            rows.append([piece])
    return rows


def _follows(left: TextBox, right: TextBox) -> bool:
    h1, h2 = left.box[3] - left.box[1], right.box[3] - right.box[1]
    low, high = min(h1, h2), max(h1, h2)
    overlap = min(left.box[3], right.box[3]) - max(left.box[1], right.box[1])
    gap = right.box[0] - left.box[2]
    return low > 0 and overlap >= 0.6 * low and high <= 1.5 * low and -0.5 * low <= gap <= low


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
