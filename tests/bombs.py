"""Hostile files for the fault tests: small on disk, huge when decoded."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def huge_png(side: int = 15000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (225 Mpx by default) that is only ~30 kB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def write_huge_png(path: Path, side: int = 15000) -> Path:
    path.write_bytes(huge_png(side))
    return path
