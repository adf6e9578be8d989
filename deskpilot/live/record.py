"""`--record FILE.mp4|.webm|.gif`: a video of the run's screen with each action drawn.

Encoding is PyAV's (FFmpeg; the `[video]` extra): H.264 in .mp4, VP9 in
.webm, a palette GIF in .gif. Frames are placed by wall-clock time, so the
video plays at the speed the run happened; a still screen repeats frames.

One recorder may follow several desktops in turn (a workflow opens one per
`foreach` row, say): `detach()` then `attach(other)` continues the same
video. Its size is the first desktop's; a desktop of another size is scaled
to fit and padded with black, so nothing is cut off or stretched.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from deskpilot.live.frames import FrameGrabber
from deskpilot.live.state import LiveState
from deskpilot.errors import UsageError

CODECS = {".mp4": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p"), ".gif": ("gif", "rgb8")}
_MARK_S = 1.5  # how long an action's mark stays on screen


def check_target(path: Path) -> None:
    """One-line errors before the run starts: a known suffix, PyAV present, a writable folder."""
    if path.suffix.lower() not in CODECS:
        raise UsageError(f"--record: use a .mp4, .webm or .gif file name, got {path.name!r}")
    try:
        import av  # noqa: F401
    except ImportError:
        raise UsageError("--record needs the [video] extra (PyAV): pip install 'deskpilot[video]'") from None
    if not path.resolve().parent.is_dir():
        raise UsageError(f"--record: folder {path.resolve().parent} does not exist")


class Recorder:
    """Grabs the attached sandbox at `fps`, draws the latest action, encodes to `path`."""

    def __init__(self, path: Path, fps: float = 5.0, max_width: int | None = None):
        check_target(path)
        self.path = Path(path)
        self.fps = fps
        self.max_width = max_width or (800 if self.path.suffix.lower() == ".gif" else 1920)
        self.state = LiveState()
        self.frames = 0
        self._lock = threading.Lock()
        self._container: Any = None  # av.OutputContainer, opened with the first frame's size
        self._stream: Any = None
        self._started = 0.0
        self._last_index = -1
        self._marked_at = 0.0
        self._note = ""  # a line from another driver (a workflow's step), shown like an action
        self._grabber: FrameGrabber | None = None

    def attach(self, sandbox) -> None:
        """Record `sandbox` from now on (after `detach()`, the same video goes on)."""
        self.detach()
        if not self._started:
            self._started = time.monotonic()
        self._grabber = FrameGrabber(sandbox, self.fps, self._on_frame, name="deskpilot-record")

    def detach(self) -> None:
        """Stop looking at the current desktop (before it closes); the file stays open."""
        if self._grabber is not None:
            self._grabber.stop()
            self._grabber = None

    def publish(self, event: Any) -> None:
        self.state.update(event)
        st = self.state.snapshot()
        if isinstance(event, dict) and event.get("event") == "note":
            self._note, self._marked_at = str(event.get("text", "")), time.monotonic()
        elif st["points"] or st["action"]:
            self._note, self._marked_at = "", time.monotonic()

    def _open(self, size: tuple[int, int]) -> None:
        import av

        codec, pix_fmt = CODECS[self.path.suffix.lower()]
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1000))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = pix_fmt
        self._stream.codec_context.time_base = Fraction(1, 1) / Fraction(self.fps).limit_denominator(1000)

    def _scaled(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        if self._stream is not None and (self._stream.width, self._stream.height) != (w, h):
            return _fit(image, (self._stream.width, self._stream.height))
        scale = min(1.0, self.max_width / w)
        nw, nh = int(w * scale) // 2 * 2, int(h * scale) // 2 * 2  # encoders want even sizes
        return image.resize((nw, nh)) if (nw, nh) != (w, h) else image

    def _draw(self, image: Image.Image) -> Image.Image:
        st = self.state.snapshot()
        if time.monotonic() - self._marked_at > _MARK_S or not (st["points"] or st["action"] or self._note):
            return image
        image = image.copy()
        draw = ImageDraw.Draw(image)
        r = max(8, image.width // 90)
        colour = {"right": "#8e24aa", "middle": "#00897b"}.get(st.get("button", ""), "#e53935")
        for x, y in st["points"]:
            draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=max(2, r // 3))
        if len(st["points"]) == 2:
            draw.line([tuple(st["points"][0]), tuple(st["points"][1])], fill="#2e7d32", width=max(2, r // 3))
        label = self._note[:100] if self._note else (f"step {st['step']}: " if st["step"] else "") + st["action"][:100]
        draw.rectangle((0, image.height - 2 * r - 8, image.width, image.height), fill="#1d2330")
        draw.text((r, image.height - 2 * r - 4), label, fill="white")
        return image

    def _on_frame(self, image: Image.Image, stamp: float) -> None:
        import av

        index = round((stamp - self._started) * self.fps)
        with self._lock:
            if index <= self._last_index:
                return
            frame_image = self._scaled(self._draw(image))
            if self._container is None:
                self._open(frame_image.size)
            frame = av.VideoFrame.from_image(frame_image)
            frame.pts = index
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self._last_index = index
            self.frames += 1

    def close(self) -> Path | None:
        """Stop grabbing, flush the encoder, close the file; the path, or None if nothing was recorded."""
        self.detach()
        with self._lock:
            if self._container is None:
                return None
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        return self.path


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` scaled to fit inside `size` (aspect kept), centred on black."""
    scale = min(size[0] / image.width, size[1] / image.height)
    inner = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", size)
    canvas.paste(image.resize(inner), ((size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2))
    return canvas
