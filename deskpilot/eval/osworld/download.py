"""Fetching a file OSWorld's cache lacks: on the host, only with --osworld-download, never in the sandbox."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

MAX_BYTES = 512 * 1024 * 1024
TIMEOUT = 120.0


def download(url: str, target: Path) -> None:
    """Write `url`'s body to `target` (through a temporary name: a cut download leaves no cache entry)."""
    if not url.startswith(("https://", "http://")):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(part, "wb") as f:
            total = 0
            while chunk := response.read(1 << 20):
                total += len(chunk)
                if total > MAX_BYTES:
                    raise OSError(f"{url} is larger than {MAX_BYTES} bytes")
                f.write(chunk)
        os.replace(part, target)
    except OSError:
        part.unlink(missing_ok=True)  # the caller reports the file as missing
