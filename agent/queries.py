"""One-off grounding (`locate`) and reading (`ask`) on a single screen."""

from __future__ import annotations

import time
from typing import Any, Callable, Literal

from deskpilot.actions.parse import ParseError
from deskpilot.agent.dialects.base import Dialect
from deskpilot.agent.records import QueryRecord
from deskpilot.agent.trajectory import Trajectory, now_iso
from deskpilot.model_backend.types import ChatRequest, Reply
from deskpilot.perception.observation import Observation


def _query(backend, kind: Literal["locate", "ask"], query: str, obs: Observation, request: ChatRequest,
           interpret: Callable[[Reply], Any], trajectory: Trajectory | None, shot_name: str) -> Any:
    """Ask once, interpret the reply, and record it (also when it fails)."""
    record = QueryRecord(kind=kind, time=now_iso(), query=query)
    if trajectory is not None:
        record.screenshot = trajectory.save_screenshot(obs.image, shot_name)
    started = time.perf_counter()
    try:
        reply = backend.complete(request)
        record.timings_ms["model"] = round((time.perf_counter() - started) * 1000, 2)
        record.raw_reply, record.reasoning = reply.content, reply.reasoning
        record.usage = {"prompt_tokens": reply.usage.prompt_tokens, "completion_tokens": reply.usage.completion_tokens}
        record.result = interpret(reply)
        return record.result
    except Exception as exc:
        record.error = str(exc)
        raise
    finally:
        if trajectory is not None:
            trajectory.append(record)


def run_locate(backend, dialect: Dialect, obs: Observation, description: str,
               trajectory: Trajectory | None = None, shot_name: str = "locate.png") -> tuple[int, int, int, int]:
    """The pixel box of what `description` names; ParseError if the model gave none."""

    def box(reply: Reply) -> tuple[int, int, int, int]:
        try:
            return tuple(dialect.parse_box(reply.content, obs.width, obs.height))
        except ParseError:
            if not reply.reasoning:  # a reply cut before </think> arrives as reasoning only
                raise
            return tuple(dialect.parse_box(reply.reasoning, obs.width, obs.height))

    request = dialect.build_locate_request(obs, description)
    return _query(backend, "locate", description, obs, request, box, trajectory, shot_name)


def run_ask(backend, dialect: Dialect, obs: Observation, question: str,
            trajectory: Trajectory | None = None, shot_name: str = "ask.png") -> str:
    """The model's visible answer to a question about the screen."""
    request = dialect.build_ask_request(obs, question)
    return _query(backend, "ask", question, obs, request, lambda r: dialect.answer_text(r.content),
                  trajectory, shot_name)
