"""`--live`: a local web page showing the sandbox screen as the agent works.

Bound to 127.0.0.1 only, and every URL carries a random token (the printed
URL is the only way in), so other users of the machine cannot watch. Frames
are grabbed only while a page is polling, and only changed frames get a new
number, so an idle page costs next to nothing.

`LiveServer` is the part every live page shares (the token, the local-only
HTTP server, the security headers); `Screen` is one watched desktop (its
frames and the loop's latest event). `LiveView` is one screen on a page;
`deskpilot.live.board.LiveBoard` is many (an evaluation's desks).
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
from typing import Any, Callable
from urllib.parse import urlsplit

from PIL import Image

from deskpilot.errors import ConfigError
from deskpilot.live.frames import FrameGrabber
from deskpilot.live.state import LiveState

_IDLE_AFTER_S = 3.0  # stop grabbing when no page asked for this long
LINGER_S = 5.0  # after the run: how long a watched page keeps getting the final frame and result

Reply = tuple[int, bytes, str, dict[str, str]]
NOT_FOUND: Reply = (404, b"not found", "text/plain", {})


def page(name: str) -> bytes:
    return resources.files("deskpilot.live").joinpath(name).read_bytes()


class Screen:
    """One desktop being watched: its latest changed frame (JPEG, numbered) and the loop's latest event."""

    def __init__(self, fps: float = 5.0, watched: Callable[[], bool] = lambda: True, max_width: int | None = None):
        self.fps, self.max_width = fps, max_width
        self.state = LiveState()
        self._watched = watched
        self._lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._raw: bytes | None = None
        self._size = (0, 0)  # the screen's own size (click points are in its pixels)
        self._seq = 0
        self._grabber: FrameGrabber | None = None

    def attach(self, sandbox) -> None:
        """Start showing `sandbox`'s screen (anything with .display and .xauthority)."""
        self.detach()
        self._grabber = FrameGrabber(sandbox, self.fps, self._on_frame, wanted=self._watched, name="deskpilot-live-frames")

    def detach(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()
            self._grabber = None

    @property
    def attached(self) -> bool:
        return self._grabber is not None

    def publish(self, event: Any) -> None:
        self.state.update(event)

    def _on_frame(self, image: Image.Image, _stamp: float) -> None:
        raw = image.tobytes()
        with self._lock:
            if raw == self._raw:
                return
        size = image.size
        if self.max_width and image.width > self.max_width:  # a tile: smaller JPEGs, same aspect
            image = image.resize((self.max_width, round(image.height * self.max_width / image.width)))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=75)
        with self._lock:
            self._raw, self._jpeg, self._size = raw, buf.getvalue(), size
            self._seq += 1

    def frame(self) -> tuple[int, bytes | None]:
        with self._lock:
            return self._seq, self._jpeg

    def frame_reply(self) -> Reply:
        seq, jpeg = self.frame()
        if jpeg is None:
            return 503, b"no frame yet", "text/plain", {}
        return 200, jpeg, "image/jpeg", {"X-Frame": str(seq)}

    def status(self) -> dict[str, Any]:
        with self._lock:
            seq, size = self._seq, self._size
        return dict(self.state.snapshot(), frame=seq, width=size[0], height=size[1], fps=self.fps,
                    attached=self.attached)


class LiveServer:
    """A token-guarded page server on the local machine; subclasses answer `route(parts)`."""

    def __init__(self, port: int = 0, fps: float = 5.0, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the live view only listens on the local machine")
        self.host, self.port, self.fps = host, port, fps
        self.token = secrets.token_urlsafe(18)
        self._last_request = 0.0
        self._httpd: ThreadingHTTPServer | None = None

    def start(self):
        server = self

        class Handler(_Handler):
            live = server

        try:
            self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as err:  # a busy port, an address not on this machine: the user's to change
            raise ConfigError(f"live view cannot listen on {self.host}:{self.port}: {err.strerror or err}; "
                              "choose another port (--live PORT; --live alone picks a free one)") from None
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, name="deskpilot-live", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.token}/"

    def _watched(self) -> bool:
        return time.monotonic() - self._last_request < _IDLE_AFTER_S

    def route(self, parts: list[str]) -> Reply:  # pragma: no cover - every subclass answers
        return NOT_FOUND

    def post(self, parts: list[str], body: dict[str, Any]) -> Reply:
        """A page's input (POST, JSON body); none unless a subclass takes some."""
        return NOT_FOUND

    def close_server(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        self.close_server()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LiveView(LiveServer):
    """The live page for one sandbox at a time: `start()`, `attach(sandbox)`, `publish(event)`, `stop()`."""

    def __init__(self, port: int = 0, fps: float = 5.0, host: str = "127.0.0.1", handover=None):
        super().__init__(port, fps, host)
        self.screen = Screen(fps, watched=self._watched)
        self._page = page("page.html")
        self.handover = handover  # an agent.loop.handover.Handover: the page may take the desk and hand it back
        self.recording: Any = None  # a `deskpilot record` session: the page marks checks, variables, secrets

    @property
    def state(self) -> LiveState:
        return self.screen.state

    def attach(self, sandbox) -> None:
        self.screen.attach(sandbox)

    def detach(self) -> None:
        self.screen.detach()

    def publish(self, event: Any) -> None:
        self.screen.publish(event)

    def frame(self) -> tuple[int, bytes | None]:
        return self.screen.frame()

    def status(self) -> dict[str, Any]:
        status = self.screen.status()
        if self.handover is not None:
            status["handover"] = self.handover.holder
            if self.handover.holder == "person" and self.handover.viewer_url:
                status["viewer"] = self.handover.viewer_url  # noVNC; the page itself is token-guarded
            if (question := self.handover.question) is not None:
                status["question"] = question.model_dump()
        if self.recording is not None:
            status["record"] = self.recording.status()
        return status

    def stop(self) -> None:
        self.finish()

    def finish(self, linger: float = LINGER_S, say: Callable[[str], None] | None = None) -> float:
        """Stop watching; a page still open keeps the final frame and result for ``linger`` seconds.

        The run has ended, so the desktop goes (no new frames), but closing the
        server at once left a watching browser with "connection refused" and
        no result. The state says ``ended`` (the page then stops asking), and
        only when a page asked recently is the server kept up: a run nobody
        watches ends without waiting. Returns the seconds waited.
        """
        self.detach()
        self.screen.state.end()
        waited = 0.0
        if linger > 0 and self._httpd is not None and self._watched():
            if say is not None:
                say(f"live view: the final screen and result stay on the page for {linger:g} s")
            started = time.monotonic()
            time.sleep(linger)
            waited = time.monotonic() - started
        self.close_server()
        return waited

    def post(self, parts: list[str], body: dict[str, Any]) -> Reply:
        """Take over (``takeover``) or hand back (``handback``, ``{"note": ...}``); only with a handover."""
        what = parts[0] if parts else ""
        if what == "record" and self.recording is not None:
            return self._record(body)
        if self.handover is None or what not in ("takeover", "handback", "answer"):
            return NOT_FOUND
        if what == "answer":
            return self._answer(body)
        if what == "takeover":
            holder = self.handover.take()
        else:
            note = body.get("note", "")
            if not isinstance(note, str) or len(note) > 2000:
                return 400, b"a note is text of at most 2000 characters", "text/plain", {}
            if not self.handover.give_back(note):
                return 409, b"the agent has the desk: take over first", "text/plain", {}
            holder = self.handover.holder
        return 200, json.dumps({"handover": holder}).encode(), "application/json", {}

    def route(self, parts: list[str]) -> Reply:
        what = parts[0] if parts else ""
        if what == "":
            return 200, self._page, "text/html; charset=utf-8", {}
        if what == "state.json":
            return 200, json.dumps(self.status()).encode(), "application/json", {}
        if what == "frame.jpg":
            return self.screen.frame_reply()
        return NOT_FOUND


    def _record(self, body: dict[str, Any]) -> Reply:
        """A mark for the recording (``{"do": "check" | "files" | "secret" | "var", "name", "value"}``)."""
        from deskpilot.errors import DeskpilotError

        if any(not isinstance(v, str) or len(v) > 2000 for v in body.values()):
            return 400, b"every field is text of at most 2000 characters", "text/plain", {}
        try:
            message = self.recording.command(body)
        except DeskpilotError as err:
            return 400, str(err).encode(), "text/plain", {}
        return 200, json.dumps({"message": message}).encode(), "application/json", {}

    def _answer(self, body: dict[str, Any]) -> Reply:
        """An approval (verdict yes / no + reason / quit) or an answer (text) to the open question."""
        assert self.handover is not None
        question = self.handover.question
        if question is None or body.get("id") != question.id:
            return 409, b"that question is closed (answered already, or the run moved on)", "text/plain", {}
        if question.kind == "confirm":
            verdict, reason = body.get("verdict"), body.get("reason", "")
            if verdict not in ("yes", "no", "quit") or not isinstance(reason, str) or len(reason) > 2000:
                return 400, b"verdict is yes, no or quit; reason is text", "text/plain", {}
            reply: dict[str, Any] = {"verdict": verdict, "reason": reason}
        else:
            text = body.get("text")
            if not isinstance(text, str) or len(text) > 2000:
                return 400, b"text is the answer, at most 2000 characters", "text/plain", {}
            reply = {"text": text}
        if not self.handover.answer(question.id, reply):
            return 409, b"that question was answered already", "text/plain", {}
        return 200, json.dumps({"answered": question.id}).encode(), "application/json", {}


class _Handler(BaseHTTPRequestHandler):
    live: LiveServer
    server_version = "deskpilot-live"

    def log_message(self, *args) -> None:  # keep the terminal for the run's own progress
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if not parts or not hmac.compare_digest(parts[0].encode(), self.live.token.encode()):
            return self._send(*NOT_FOUND)
        self.live._last_request = time.monotonic()
        self._send(*self.live.route(parts[1:]))

    def do_POST(self) -> None:
        """Input from the page: the token in the path, a JSON body, and a same-origin request only."""
        parts = urlsplit(self.path).path.strip("/").split("/")
        if not parts or not hmac.compare_digest(parts[0].encode(), self.live.token.encode()):
            return self._send(*NOT_FOUND)
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.live.host}:{self.live.port}":
            return self._send(403, b"cross-origin input refused", "text/plain")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self._send(415, b"send JSON", "text/plain")
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(min(length, 65536)) or b"{}") if length else {}
        except (ValueError, json.JSONDecodeError):
            return self._send(400, b"the body is not JSON", "text/plain")
        if not isinstance(body, dict):
            return self._send(400, b"the body is a JSON object", "text/plain")
        self.live._last_request = time.monotonic()
        self._send(*self.live.post(parts[1:], body))

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' blob:; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                         "frame-src http://127.0.0.1:*")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
