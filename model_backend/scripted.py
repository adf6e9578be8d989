"""A backend that answers from a script: for end-to-end tests and offline replays."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Sequence

from deskpilot.model_backend.base import BackendError
from deskpilot.model_backend.types import ChatRequest, Reply


class ScriptedBackend:
    """Returns the given replies in order and records every request it gets.

    ``keep_requests=False`` keeps only the count: each request holds the
    step's screenshots, so a long scripted run (CLI ``--script``, eval suites,
    benchmarks) would otherwise keep every frame of the run in memory (~8 MB
    each at 1920x1080) and make each new frame cost fresh page faults.
    """

    def __init__(self, replies: Sequence[str | Reply], *, loop: bool = False, keep_requests: bool = True):
        self.replies = [r if isinstance(r, Reply) else Reply(content=r) for r in replies]
        self.loop = loop
        self.keep_requests = keep_requests
        self.calls = 0
        self.requests: list[ChatRequest] = []
        if loop and not self.replies:
            raise BackendError("scripted backend needs at least one reply to loop over")

    @classmethod
    def from_file(cls, path: str | Path, *, loop: bool = False, keep_requests: bool = True) -> "ScriptedBackend":
        """A JSON list of reply strings, or a recorded run's trajectory.jsonl."""
        path = Path(path)
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block forever, a folder fail later
                raise BackendError(f"script {path} is not a regular file")
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BackendError(f"cannot read script {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise BackendError(f"script {path} is not UTF-8 text") from None
        replies = _from_jsonl(text, path) if path.suffix == ".jsonl" else _from_json(text, path)
        return cls(replies, loop=loop, keep_requests=keep_requests)

    def complete(self, request: ChatRequest) -> Reply:
        used = self.calls
        if used >= len(self.replies) and not self.loop:
            raise BackendError(f"scripted backend has no more replies ({used} used)")
        self.calls += 1
        if self.keep_requests:
            self.requests.append(request)
        return self.replies[used % len(self.replies)].model_copy()

    async def acomplete(self, request: ChatRequest) -> Reply:
        return self.complete(request)

    def close(self) -> None:
        pass


def _from_json(text: str, path: Path) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BackendError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, list) or not all(isinstance(r, str) for r in data):
        raise BackendError(f"{path}: expected a JSON list of reply strings")
    return data


def _replies_of(rec: dict) -> list[Reply]:
    """A record's replies in the order the model gave them: failed attempts first."""
    out = [Reply(content=a["raw_reply"], reasoning=a.get("reasoning"))
           for a in rec.get("attempts") or [] if isinstance(a, dict) and isinstance(a.get("raw_reply"), str)]
    raw = rec.get("raw_reply")
    if isinstance(raw, str) and (raw or not rec.get("error")):  # "" + error: the model never answered
        out.append(Reply(content=raw, reasoning=rec.get("reasoning")))
    return out


def _from_jsonl(text: str, path: Path) -> list[Reply]:
    """Every raw_reply of a trajectory (retried attempts included), in file order."""
    replies = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BackendError(f"{path}:{n}: not valid JSON: {exc.msg}") from None
        if isinstance(rec, dict):
            replies += _replies_of(rec)
    if not replies:
        raise BackendError(f"{path}: no records with a 'raw_reply' field")
    return replies
