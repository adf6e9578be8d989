"""`--live`: a local web page showing the sandbox screen as the agent works.

Bound to 127.0.0.1 only, and every URL carries a random token (the printed
URL is the only way in), so other users of the machine cannot watch. Frames
are grabbed only while a page is polling, and only changed frames get a new
number, so an idle page costs next to nothing.
"""

from __future__ import annotations

import hmac
import io
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from deskpilot.agent.live.frames import FrameGrabber
from deskpilot.agent.live.state import LiveState

_IDLE_AFTER_S = 3.0  # stop grabbing when no page asked for this long


class LiveView:
    """The live page for one sandbox at a time: `start()`, `attach(sandbox)`, `publish(event)`, `stop()`."""

    def __init__(self, port: int = 0, fps: float = 5.0, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the live view only listens on the local machine")
        self.host, self.port, self.fps = host, port, fps
        self.token = secrets.token_urlsafe(18)
        self.state = LiveState()
        self._lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._raw: bytes | None = None
        self._size = (0, 0)
        self._seq = 0
        self._last_request = 0.0
        self._grabber: FrameGrabber | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._page = resources.files("deskpilot.agent.live").joinpath("page.html").read_bytes()

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> "LiveView":
        view = self

        class Handler(_Handler):
            live = view

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, name="deskpilot-live", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.token}/"

    def attach(self, sandbox) -> None:
        """Start showing `sandbox`'s screen (anything with .display and .xauthority)."""
        self.detach()
        self._grabber = FrameGrabber(sandbox, self.fps, self._on_frame, wanted=self._watched, name="deskpilot-live-frames")

    def detach(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()
            self._grabber = None

    def publish(self, event: Any) -> None:
        self.state.update(event)

    def stop(self) -> None:
        self.detach()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LiveView":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- frames ------------------------------------------------------------------
    def _watched(self) -> bool:
        return time.monotonic() - self._last_request < _IDLE_AFTER_S

    def _on_frame(self, image: Image.Image, _stamp: float) -> None:
        raw = image.tobytes()
        with self._lock:
            if raw == self._raw:
                return
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=75)
        with self._lock:
            self._raw, self._jpeg, self._size = raw, buf.getvalue(), image.size
            self._seq += 1

    def frame(self) -> tuple[int, bytes | None]:
        with self._lock:
            return self._seq, self._jpeg

    def status(self) -> dict[str, Any]:
        with self._lock:
            seq, size = self._seq, self._size
        return dict(self.state.snapshot(), frame=seq, width=size[0], height=size[1], fps=self.fps,
                    attached=self._grabber is not None)


class _Handler(BaseHTTPRequestHandler):
    live: LiveView
    server_version = "deskpilot-live"

    def log_message(self, *args) -> None:  # keep the terminal for the run's own progress
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if not parts or not hmac.compare_digest(parts[0].encode(), self.live.token.encode()):
            return self._send(404, b"not found", "text/plain")
        self.live._last_request = time.monotonic()
        what = parts[1] if len(parts) > 1 else ""
        if what == "":
            return self._send(200, self.live._page, "text/html; charset=utf-8")
        if what == "state.json":
            return self._send(200, json.dumps(self.live.status()).encode(), "application/json")
        if what == "frame.jpg":
            seq, jpeg = self.live.frame()
            if jpeg is None:
                return self._send(503, b"no frame yet", "text/plain")
            return self._send(200, jpeg, "image/jpeg", {"X-Frame": str(seq)})
        return self._send(404, b"not found", "text/plain")

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' blob:; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
