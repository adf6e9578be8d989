"""A fast PNG writer for screen frames.

Screens compress well with the plain "none" row filter at deflate level 1;
the cost is almost all deflate. ISA-L's deflate (the `isal` package) does
that about 5x faster than zlib at the same size, so it is used when present.
Rows are copied, each after its filter byte, into a buffer kept per thread
(one numpy assignment, not a loop over rows): fresh multi-megabyte buffers
cost more in page faults than the copy itself.
"""

from __future__ import annotations

import struct
import threading
import zlib

from types import ModuleType

import numpy as np
from PIL import Image

_deflate: ModuleType
try:  # optional speed-up; zlib gives the same format
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - exercised where isal is missing
    _deflate = zlib

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


_local = threading.local()


def _scanlines(rgb: Image.Image) -> np.ndarray:
    width, height = rgb.size
    line = width * 3
    buf = getattr(_local, "buf", None)
    if buf is None or buf.shape != (height, line + 1):
        buf = _local.buf = np.zeros((height, line + 1), np.uint8)  # column 0 stays 0: filter "none"
    buf[:, 1:] = np.frombuffer(rgb.tobytes(), np.uint8).reshape(height, line)  # one copy, not a row loop
    return buf


def png_bytes(rgb: Image.Image, level: int = 1) -> bytes:
    """An RGB image as PNG bytes (8-bit truecolour, no interlace)."""
    width, height = rgb.size
    header = struct.pack(">2I5B", width, height, 8, 2, 0, 0, 0)
    deflate = _deflate if level <= 1 else zlib  # ISA-L for speed; zlib when size matters more
    body = deflate.compress(_scanlines(rgb), level)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
