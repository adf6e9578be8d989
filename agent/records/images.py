"""Reading an image a record names, for inlining into a report.

Why this is careful: a trajectory is a plain file anyone can edit or hand over,
and the report inlines what it names. A hand-made trajectory naming
``/root/secret.png`` (or ``../../x``, or a link planted in the run folder)
embedded a root-only picture into a report anyone could open; a FIFO hung the
build; a 225-megapixel PNG ended it with a traceback. So an image is inlined
only when it is a regular file inside the run folder (reached without leaving
it through a link), no bigger than ``MAX_BYTES`` and ``MAX_PIXELS`` (checked
from the header, before any decoding). Anything else becomes a missing image
with the reason, shown in the report.
"""

from __future__ import annotations

import base64
import io
import os
import stat
import warnings
from pathlib import Path
from typing import NamedTuple

from PIL import Image

INLINE_PNG_MAX = 512 * 1024  # larger PNGs (photos, gradients) are inlined as JPEG instead
MAX_BYTES = 64 * 1024 * 1024  # a 7680x4320 screenshot as PNG is well below this
MAX_PIXELS = 40_000_000  # 8K (33 Mpx) fits; decoding a bigger one costs hundreds of MB
_TOO_MANY = f"more than the {MAX_PIXELS} pixels a report inlines"


class Inlined(NamedTuple):
    """An image ready for an <img src>, or why there is none (``url`` None, ``missing`` says why)."""

    url: str | None
    width: int = 0
    height: int = 0
    missing: str = ""


def _inside(run_dir: Path, name: str | Path) -> Path | None:
    """The file's real path when the name leads to a place inside the run folder, else None."""
    root = run_dir.resolve()
    real = (root / name).resolve()  # an absolute name stays absolute; links are followed here
    return real if real != root and real.is_relative_to(root) else None


def _read(path: Path) -> bytes:
    """The bytes of a regular file, at most MAX_BYTES; never blocks on a FIFO or device."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > MAX_BYTES:
            raise ValueError(f"{st.st_size} bytes, more than the {MAX_BYTES} a report inlines")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_BYTES + 1)
    finally:
        os.close(fd)


def inline_image(run_dir: Path, name: str | Path, thumbnail: int | None = None, quality: int = 85) -> Inlined:
    """A data URL of an image a record names (relative to the run folder), or why it was refused;
    ``thumbnail`` shrinks it to fit that many pixels a side (always a JPEG then)."""
    path = _inside(Path(run_dir), name)
    if path is None:
        return Inlined(None, missing=f"{name}: outside the run folder, not inlined")
    if not path.exists():
        return Inlined(None, missing=f"{name}: not found")
    try:
        data = _read(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    return Inlined(None, missing=f"{name}: {w}x{h} pixels, {_TOO_MANY}")
                if img.format == "PNG" and len(data) <= INLINE_PNG_MAX and thumbnail is None:  # a UI screen: its own bytes, no re-encode
                    return Inlined("data:image/png;base64," + base64.b64encode(data).decode(), w, h)
                rgb = img.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # PIL's own limit is above ours
        return Inlined(None, missing=f"{name}: {_TOO_MANY}")
    except (OSError, ValueError) as exc:
        return Inlined(None, missing=f"{name}: not inlined ({exc})")
    if thumbnail is not None:
        rgb.thumbnail((thumbnail, thumbnail))
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=quality)
    return Inlined("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), rgb.width, rgb.height)
