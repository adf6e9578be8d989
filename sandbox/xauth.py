"""X authority cookies: one random cookie per sandbox, honoured by every client.

The cookie file holds entries with an empty display number, so they match
whatever display number Xvfb picks with ``-displayfd`` (unknown when the server
starts): a wildcard-family entry for libxcb/Xlib clients, and a local-family
entry for this host name because python-xlib ignores the wildcard family. libxcb and python-xlib read the file named by
``$XAUTHORITY`` when they connect; :func:`authority` sets it for the duration of
one connect, under a lock, because there is no per-connection parameter.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

_FAMILY_WILD = 0xFFFF
_FAMILY_LOCAL = 256
_PROTOCOL = b"MIT-MAGIC-COOKIE-1"
_env_lock = threading.RLock()


def _field(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def write_cookie(path: Path) -> bytes:
    """Write a fresh wildcard MIT-MAGIC-COOKIE-1 authority file (mode 0600)."""
    cookie = secrets.token_bytes(16)
    entries = b"".join(
        struct.pack(">H", family) + _field(address) + _field(b"") + _field(_PROTOCOL) + _field(cookie)
        for family, address in ((_FAMILY_WILD, b""), (_FAMILY_LOCAL, socket.gethostname().encode()))
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(entries)
    return cookie


@contextlib.contextmanager
def authority(xauthority: Path | str | None) -> Iterator[None]:
    """Point ``$XAUTHORITY`` at ``xauthority`` while an X connection is opened."""
    if xauthority is None:
        yield
        return
    with _env_lock:
        old = os.environ.get("XAUTHORITY")
        os.environ["XAUTHORITY"] = str(xauthority)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("XAUTHORITY", None)
            else:
                os.environ["XAUTHORITY"] = old
