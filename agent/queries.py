"""One-off grounding (`locate`) and reading (`ask`) on a single screen."""

from __future__ import annotations

import time

from actions.parse import ParseError
from agent.dialects.base import Dialect
from agent.records import QueryRecord
from agent.trajectory import Trajectory, now_iso
from perception.observation import Observation


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def run_locate(backend, dialect: Dialect, obs: Observation, description: str,
               trajectory: Trajectory | None = None, shot_name: str = "locate.png") -> tuple[int, int, int, int]:
    """The pixel box of what `description` names; ParseError if the model gave none."""
    record = QueryRecord(kind="locate", time=now_iso(), query=description)
    if trajectory is not None:
        record.screenshot = trajectory.save_screenshot(obs.image, shot_name)
    t = time.perf_counter()
    try:
        reply = backend.complete(dialect.build_locate_request(obs, description))
        record.timings_ms["model"] = _ms(t)
        record.raw_reply, record.reasoning = reply.content, reply.reasoning
        record.usage = {"prompt_tokens": reply.usage.prompt_tokens, "completion_tokens": reply.usage.completion_tokens}
        try:
            box = dialect.parse_box(reply.content, obs.width, obs.height)
        except ParseError:
            if not reply.reasoning:  # a reply cut before </think> arrives as reasoning only
                raise
            box = dialect.parse_box(reply.reasoning, obs.width, obs.height)
        record.result = list(box)
        return box
    except Exception as exc:
        record.error = str(exc)
        raise
    finally:
        if trajectory is not None:
            trajectory.append(record)


def run_ask(backend, dialect: Dialect, obs: Observation, question: str,
            trajectory: Trajectory | None = None, shot_name: str = "ask.png") -> str:
    """The model's visible answer to a question about the screen."""
    record = QueryRecord(kind="ask", time=now_iso(), query=question)
    if trajectory is not None:
        record.screenshot = trajectory.save_screenshot(obs.image, shot_name)
    t = time.perf_counter()
    try:
        reply = backend.complete(dialect.build_ask_request(obs, question))
        record.timings_ms["model"] = _ms(t)
        record.raw_reply, record.reasoning = reply.content, reply.reasoning
        record.usage = {"prompt_tokens": reply.usage.prompt_tokens, "completion_tokens": reply.usage.completion_tokens}
        answer = dialect.answer_text(reply.content)
        record.result = answer
        return answer
    except Exception as exc:
        record.error = str(exc)
        raise
    finally:
        if trajectory is not None:
            trajectory.append(record)
