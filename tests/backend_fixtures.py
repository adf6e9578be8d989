"""Fixtures for the backend tests: the tiny checkpoint, a real `transformers serve`, screenshots.

The checkpoint and the server are built once per test session and shared by
every module that imports these fixtures (memoised at module level, because
pytest makes a separate fixture definition per importing module).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from deskpilot.model_backend.serve import ServeOptions, health_urls, launch, stop, wait_healthy

_shared: dict[str, object] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(home: Path) -> dict[str, str]:
    """No hub access and a private HF cache: everything must come from the folder."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "TRANSFORMERS_VERBOSITY": "error"}


def desktop_screenshot(width: int = 1920, height: int = 1080) -> Image.Image:
    """A synthetic desktop frame: a title bar, a window and a button."""
    img = Image.new("RGB", (width, height), (40, 44, 52))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, width, 32], fill=(20, 20, 20))
    d.rectangle([width // 4, height // 4, width * 3 // 4, height * 3 // 4], fill=(235, 235, 235))
    d.rectangle([width // 2 - 60, height // 2 - 20, width // 2 + 60, height // 2 + 20], fill=(40, 120, 220))
    d.text((width // 2 - 10, height // 2 - 6), "OK", fill=(255, 255, 255))
    return img


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny random GLM-4.5V-architecture checkpoint folder (built once)."""
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    if "ckpt" not in _shared:
        from deskpilot.model_backend.tiny import build_tiny_checkpoint

        _shared["ckpt"] = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-glm") / "ckpt", seed=0)
    return _shared["ckpt"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def tiny_server(tiny_checkpoint, tmp_path_factory):
    """A real `transformers serve` process on the tiny checkpoint: (base_url, model name)."""
    if "server" not in _shared:
        exe = Path(sys.executable).parent / "transformers"
        if not exe.is_file() and shutil.which("transformers") is None:
            pytest.skip("`transformers serve` is not installed")
        opts = ServeOptions(engine="transformers", model=str(tiny_checkpoint), port=free_port())
        home = tmp_path_factory.mktemp("hf-home")
        log = home / "serve.log"
        proc = launch(opts, log, env=offline_env(home))
        _shared["server"] = (opts.base_url(), opts.served_name())
        _shared["proc"] = proc
        wait_healthy(proc, health_urls(opts), 120, log)
    yield _shared["server"]
    proc = _shared.pop("proc", None)
    if proc is not None:
        stop(proc)  # type: ignore[arg-type]


class FakeServer:
    """A FAKE OpenAI-style HTTP server (http.server on 127.0.0.1, in a thread).

    Only for behaviour a real `transformers serve` cannot be made to show:
    scripted HTTP 429/5xx/401/404 answers to prove retries and error messages.
    ``responses`` is a list of (status, json_body) served in order (the last
    one repeats); ``hits`` counts POSTs; GET /v1/models answers ``models``.
    """

    def __init__(self, responses: list[tuple[int, dict]], models: list[str] | None = None):
        self.responses, self.models, self.hits = responses, models, 0
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if fake.models is None:
                    self._send(500, {"error": "no listing"})
                else:
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, body = fake.responses[min(fake.hits, len(fake.responses) - 1)]
                fake.hits += 1
                self._send(status, body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion_body(content: str, reasoning: str | None = None) -> dict:
    """A chat.completion JSON body as vLLM returns it."""
    msg = {"role": "assistant", "content": content}
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    return {
        "id": "x", "object": "chat.completion", "created": 0, "model": "glm-4.5v",
        "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def expected_prompt_tokens(checkpoint: Path, text: str, size: tuple[int, int], *, thinking: bool) -> int:
    """Prompt length predicted WITHOUT the image processor: template text tokens
    with one image placeholder, plus perception's image-token estimate."""
    from transformers import AutoTokenizer

    from deskpilot.model_backend.tiny import CHAT_TEMPLATE
    from deskpilot.perception.resize import image_tokens

    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    msgs = [{"role": "user", "content": [{"type": "text", "text": text}, {"type": "image"}]}]
    rendered = tok.apply_chat_template(msgs, chat_template=CHAT_TEMPLATE, add_generation_prompt=True,
                                       tokenize=False, enable_thinking=thinking)
    ids = tok(rendered)["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|image|>")) == 1
    return len(ids) - 1 + image_tokens(*size)
