"""One-off grounding (`locate`) and reading (`ask`) on a single screen.

Each call has one deadline for everything (the backend's tries and waits
included), stated in the error: a hung server costs that long, not the
backend's per-try timeout times its tries.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Literal

from deskpilot.actions.parse import ParseError
from deskpilot.agent.dialects.base import Dialect
from deskpilot.agent.records.models import QueryRecord
from deskpilot.agent.records.trajectory import Trajectory, now_iso
from deskpilot.model_backend.types import ChatRequest, Reply
from deskpilot.perception.observation import Observation

from deskpilot.errors import BackendError

DEFAULT_DEADLINE_S = 300.0


def _deadline(backend, deadline_s: float | None) -> float:
    """The call's deadline: given, else the backend's own per-try timeout, else 300 s."""
    if deadline_s is not None:
        return deadline_s
    timeout = getattr(backend, "timeout", None)
    return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else DEFAULT_DEADLINE_S


def complete_within(backend, request: ChatRequest, deadline_s: float, what: str) -> Reply:
    """backend.acomplete under one deadline (cancelling a request closes its connection)."""

    async def call() -> Reply:
        try:
            async with asyncio.timeout(deadline_s):  # not wait_for: on 3.11 it can swallow a cancellation
                return await backend.acomplete(request)
        except asyncio.TimeoutError:
            where = getattr(backend, "base_url", None)
            raise BackendError(f"no answer from the model{f' at {where}' if where else ''} within the {deadline_s:g} s "
                               f"limit for one {what} (all tries included)", retryable=True) from None
        finally:
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                await aclose()  # its connections belong to this event loop

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call())
    with ThreadPoolExecutor(1) as pool:  # called from inside an event loop: run ours beside it
        return pool.submit(asyncio.run, call()).result()


def _query(backend, kind: Literal["locate", "ask"], query: str, obs: Observation, request: ChatRequest,
           interpret: Callable[[Reply], Any], trajectory: Trajectory | None, shot_name: str,
           deadline_s: float | None = None) -> Any:
    """Ask once (under one deadline), interpret the reply, and record it (also when it fails)."""
    record = QueryRecord(kind=kind, time=now_iso(), query=query)
    if trajectory is not None:
        record.screenshot = trajectory.save_screenshot(obs.image, shot_name)
    started = time.perf_counter()
    try:
        reply = complete_within(backend, request, _deadline(backend, deadline_s), kind)
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
               trajectory: Trajectory | None = None, shot_name: str = "locate.png",
               deadline_s: float | None = None) -> tuple[int, int, int, int]:
    """The pixel box of what `description` names; ParseError if the model gave none."""

    def box(reply: Reply) -> tuple[int, int, int, int]:
        try:
            x1, y1, x2, y2 = dialect.parse_box(reply.content, obs.width, obs.height)
        except ParseError:
            if not reply.reasoning:  # a reply cut before </think> arrives as reasoning only
                raise
            x1, y1, x2, y2 = dialect.parse_box(reply.reasoning, obs.width, obs.height)
        return x1, y1, x2, y2

    request = dialect.build_locate_request(obs, description)
    return _query(backend, "locate", description, obs, request, box, trajectory, shot_name, deadline_s)


def run_ask(backend, dialect: Dialect, obs: Observation, question: str,
            trajectory: Trajectory | None = None, shot_name: str = "ask.png", deadline_s: float | None = None) -> str:
    """The model's visible answer to a question about the screen."""
    request = dialect.build_ask_request(obs, question)
    return _query(backend, "ask", question, obs, request, lambda r: dialect.answer_text(r.content),
                  trajectory, shot_name, deadline_s)
