"""SIMULATOR of a GLM-4.5V server — not a model. For benchmarks and tests only.

A real OpenAI-compatible HTTP server on 127.0.0.1 that answers
POST /v1/chat/completions with *scripted* GLM-4.5V replies after a
configurable delay, standing in for what cannot run here (a GPU serving
GLM-4.5V, whose steps take seconds). It reads the task and the step number
out of the deskpilot desktop prompt it receives ("# Task:" section, one
"step N:" entry per past step), looks the task up in a suite file and returns
that task's reply for the step, split like vLLM's glm45 reasoning parser
(<think> text in reasoning_content). Usage is estimated (a fixed cost per
image plus text length / 4), marked as such in the reply's model name.

    python bench/glm_simulator.py --suite deskpilot/eval/example/suite.yaml --delay 2 --port 0
    -> prints "SIMULATOR listening on http://127.0.0.1:PORT/v1" and serves until killed

GET /stats returns {"requests", "in_flight", "max_in_flight"}: how many calls
the client really had in flight at once.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_TASK = re.compile(r"# Task:\n(.*?)\n\n# ", re.DOTALL)
_STEP = re.compile(r"\nstep \d+: Screenshot:")
_THINK = re.compile(r"^\s*<think>(.*?)</think>", re.DOTALL)
IMAGE_TOKENS = 1200  # a 1280x800 screenshot is ~1,300 GLM-4.5V image tokens
MODEL_NAME = "glm-4.5v-SIMULATOR"


def load_scripts(suite: Path) -> dict[str, list[str]]:
    """task text -> scripted replies, from a deskpilot suite file."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from deskpilot.eval.suite import load_suite

    return {t.task: t.replies() or [] for t in load_suite(suite).tasks}


class Simulator(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int, scripts: dict[str, list[str]], delay: float, jitter: float = 0.0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.scripts, self.delay, self.jitter = scripts, delay, jitter
        self.lock = threading.Lock()
        self.requests = self.in_flight = self.max_in_flight = 0

    def reply_for(self, body: dict) -> tuple[str, int, int]:
        """(reply text, prompt tokens, completion tokens) for one chat request."""
        first = body["messages"][0]["content"]
        parts = first if isinstance(first, list) else [{"type": "text", "text": first}]
        text = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
        images = sum(p.get("type") == "image_url" for m in body["messages"] for p in
                     (m["content"] if isinstance(m["content"], list) else []))
        found = _TASK.search(text)
        script = self.scripts.get(found.group(1).strip() if found else "")
        step = len(_STEP.findall(text))
        if not script:
            reply = "This task is not in the simulator's script.\n<|begin_of_box|>FAIL()<|end_of_box|>"
        else:
            reply = script[min(step, len(script) - 1)]
        return reply, len(text) // 4 + images * IMAGE_TOKENS, max(1, len(reply) // 4)


class _Handler(BaseHTTPRequestHandler):
    server: Simulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        s = self.server
        if self.path.endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})
        elif self.path.endswith("/stats"):
            with s.lock:
                self._send(200, {"requests": s.requests, "in_flight": s.in_flight, "max_in_flight": s.max_in_flight})
        elif self.path.endswith("/health"):
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        s = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found"}})
            return
        with s.lock:
            s.requests += 1
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            reply, prompt_tokens, completion_tokens = s.reply_for(body)
            time.sleep(max(0.0, s.delay + random.uniform(-s.jitter, s.jitter)))
        finally:
            with s.lock:
                s.in_flight -= 1
        reasoning = None
        if (think := _THINK.match(reply)) is not None:
            reasoning, reply = think.group(1), reply[think.end():]
        message = {"role": "assistant", "content": reply}
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        self._send(200, {
            "id": f"sim-{s.requests}", "object": "chat.completion", "created": int(time.time()), "model": MODEL_NAME,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, required=True, help="suite file whose scripts to answer with")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per reply (default 2, like a real step)")
    parser.add_argument("--jitter", type=float, default=0.0, help="+/- seconds of random variation")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    server = Simulator(args.port, load_scripts(args.suite), args.delay, args.jitter)
    print(f"SIMULATOR listening on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
