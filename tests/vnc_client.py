"""A real VNC client for tests: vncdotool (RFB over TCP), started once per test process.

vncdotool's threaded API runs a Twisted reactor on a daemon thread that
cannot be restarted once stopped, so it is stopped once, at exit.
"""

from __future__ import annotations

import atexit
import io
import warnings

from PIL import Image

with warnings.catch_warnings():  # vncdotool's VNC-auth DES uses a cipher name cryptography has deprecated
    warnings.simplefilter("ignore")
    from vncdotool import api
    from vncdotool.client import VNCDoToolFactory

_stopping = False


class _NoCursorFactory(VNCDoToolFactory):
    """Ask for no cursor: the client must not paint one into the framebuffer it hands back."""

    nocursor = True


def connect(port: int, password: str | None, timeout: float = 30.0):
    """A connected vncdotool client proxy for 127.0.0.1:``port``."""
    global _stopping
    if not _stopping:
        atexit.register(api.shutdown)
        _stopping = True
    return api.connect(f"127.0.0.1::{port}", password=password, factory_class=_NoCursorFactory, timeout=timeout)


def framebuffer(client) -> Image.Image:
    """The server's whole framebuffer now (a full, non-incremental update)."""
    buf = io.BytesIO()
    client.captureScreen(buf, format="PNG")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def type_text(client, text: str) -> None:
    """Press and release one key per character (letters, digits and space)."""
    for char in text:
        client.keyPress("space" if char == " " else char)
