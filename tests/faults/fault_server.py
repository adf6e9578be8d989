"""A misbehaving model server for the fault tests: real HTTP on 127.0.0.1, written here.

This is a SIMULATOR of a broken server (the real GLM-4.5V server cannot be
made to fail on demand): each POST gets the next scripted answer (the last one
repeats), written as raw bytes so it can also be truncated, hang or be garbage.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable

Answer = Callable[[socket.socket], None]


def http(status: int, body: bytes | str | dict, headers: dict[str, str] | None = None,
         length: int | None = None) -> Answer:
    """An HTTP/1.1 answer; ``length`` lies about Content-Length (a truncated body)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    head = {"Content-Type": "application/json", "Content-Length": str(len(data) if length is None else length),
            "Connection": "close", **(headers or {})}

    def send(conn: socket.socket) -> None:
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)

    return send


def hang(seconds: float = 3600) -> Answer:
    """Read the request, then say nothing (until the client gives up or the server stops)."""
    def send(conn: socket.socket) -> None:
        conn.settimeout(seconds)
        try:
            conn.recv(1)  # returns when the client closes
        except OSError:
            pass
    return send


def garbage(data: bytes) -> Answer:
    """Raw bytes that are not HTTP at all."""
    return lambda conn: conn.sendall(data)


def huge(total: int, *, gzip: bool = False, sent: list[int] | None = None) -> Answer:
    """A 200 answer declaring ``total`` bytes of chat completion (one long content string), written
    a MiB at a time until done or the client hangs up; ``sent`` gets the bytes written.
    With ``gzip``, the body is a gzip stream of that many bytes (about 1000 times smaller on the wire)."""
    import zlib

    head = b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"'
    tail = b'"},"finish_reason":"stop"}]}'
    piece = b"a" * (1024 * 1024)

    def body():
        yield head
        left = total - len(head) - len(tail)
        while left > 0:
            yield piece[:left]
            left -= len(piece)
        yield tail

    def send(conn: socket.socket) -> None:
        packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS) if gzip else None
        extra = "Content-Encoding: gzip\r\n" if gzip else f"Content-Length: {total}\r\n"
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Connection: close\r\n\r\n".encode())
        count = 0
        try:
            for chunk in body():
                data = packer.compress(chunk) if packer else chunk
                conn.sendall(data)
                count += len(data)
            if packer:
                conn.sendall(packer.flush())
        finally:
            if sent is not None:
                sent.append(count)

    return send


def completion(content, reasoning=None, usage=None, **message_extra) -> dict:
    """A chat.completion body; any field may be given a wrong type on purpose."""
    message = {"role": "assistant", "content": content, **message_extra}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "glm-4.5v",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage if usage is not None else {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


class FaultServer:
    """Serve ``answers`` in order to POSTs (GET /v1/models lists one model); ``hits`` counts POSTs."""

    def __init__(self, answers: list[Answer]):
        self.answers, self.hits, self.posts = answers, 0, []
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                head, body = _read_request(conn)
                if head.startswith("GET"):
                    http(200, {"object": "list", "data": [{"id": "glm-4.5v", "object": "model"}]})(conn)
                    return
                with lock:
                    answer = server.answers[min(server.hits, len(server.answers) - 1)]
                    server.hits += 1
                    server.posts.append(time.monotonic())
                try:
                    answer(conn)
                except OSError:
                    pass

        lock = threading.Lock()
        socketserver.ThreadingTCPServer.daemon_threads = True
        self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.tcp.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.tcp.serve_forever, daemon=True)

    def __enter__(self) -> "FaultServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.tcp.shutdown()
        self.tcp.server_close()


def _read_request(conn: socket.socket) -> tuple[str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data.decode("latin-1"), b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    length = next((int(line.split(":", 1)[1]) for line in text.split("\r\n") if line.lower().startswith("content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return text, body


def closed_port_url() -> str:
    """A base URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
