"""Check a server's chat completion at the boundary, before anything trusts its fields.

The SDK builds its response objects without validating them, so a server that
answers ``choices: [null]``, a message without content, a number as content or
text as token counts would otherwise surface as a traceback or a pydantic dump
deep in the loop. Here each becomes one BackendError line naming the field.
"""

from __future__ import annotations

import time
from typing import Any

from deskpilot.model_backend.base import BackendError
from deskpilot.model_backend.types import Reply, Usage

_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(value: Any) -> str | None:
    """Content as text: a string, or a list of text parts (some servers send that)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(_get(p, "text"), str) for p in value):
        return "".join(_get(p, "text") for p in value)
    return None


def _count(usage: Any, name: str, bad: "_Bad") -> int:
    value = _get(usage, name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise bad(f"usage.{name} is {str(value)[:40]!r} ({_kind(value)}), not a whole number")
    return int(value)


class _Bad:
    def __init__(self, base_url: str):
        self.base_url = base_url

    def __call__(self, what: str) -> BackendError:
        return BackendError(f"the model server at {self.base_url} sent a malformed chat completion: {what}")


def reply_from_completion(resp: Any, started: float, base_url: str) -> Reply:
    """The Reply in a chat completion, or one BackendError line saying what is wrong with it."""
    bad = _Bad(base_url)
    choices = _get(resp, "choices") if not isinstance(resp, (str, bytes)) else None
    if not isinstance(choices, list) or not choices:
        if isinstance(choices, list):
            raise bad("its choices list is empty")
        raise BackendError(f"the server at {base_url} did not answer with an OpenAI chat completion: "
                           "is the base URL right (it usually ends in /v1)?")
    choice = choices[0]
    if choice is None or isinstance(choice, (str, int, float, list)):
        raise bad(f"choices[0] is {_kind(choice)}, not an object")
    message = _get(choice, "message")
    if message is None or isinstance(message, (str, int, float, list)):
        raise bad("choices[0] has no message" if message is None else f"choices[0].message is {_kind(message)}")
    content = _text(_get(message, "content"))
    if content is None and _get(message, "content") is not None:
        raise bad(f"choices[0].message.content is {_kind(_get(message, 'content'))}, not text")
    extra = message if isinstance(message, dict) else (_get(message, "model_extra") or {})
    raw_reasoning = extra.get("reasoning_content") or extra.get("reasoning") if isinstance(extra, dict) else None
    reasoning = _text(raw_reasoning)
    if reasoning is None and raw_reasoning is not None:
        raise bad(f"choices[0].message.reasoning_content is {_kind(raw_reasoning)}, not text")
    usage_obj = _get(resp, "usage")
    usage = Usage()
    if usage_obj is not None:
        if isinstance(usage_obj, (str, int, float, list, bool)):
            raise bad(f"usage is {_kind(usage_obj)}, not an object")
        usage = Usage(**{name: _count(usage_obj, name, bad) for name in _USAGE_FIELDS})
    model, finish = _get(resp, "model"), _get(choice, "finish_reason")
    return Reply(content=content or "", reasoning=reasoning or None, usage=usage,
                 latency_ms=(time.perf_counter() - started) * 1000,
                 model=model if isinstance(model, str) else None,
                 finish_reason=finish if isinstance(finish, str) else None)
