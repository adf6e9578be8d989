"""What the loop tells its watchers while it runs: one typed stream.

The CLI's progress lines, the live view, the MCP server and the eval
progress all read the same events. Each is a pydantic model with a `kind`
and serialises like a trajectory line (`event.model_dump_json()`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter

from deskpilot.agent.records.models import StepRecord
from deskpilot.agent.records.secrets import map_strings


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _Event(BaseModel):
    time: str = Field(default_factory=_now)


class RunStarted(_Event):
    kind: Literal["run_started"] = "run_started"
    task: str
    run_dir: str
    max_steps: int


class StepStarted(_Event):
    """The screen was captured; the model is being asked."""

    kind: Literal["thinking"] = "thinking"
    step: int
    max_steps: int
    screenshot: str | None = None


class ReplyRejected(_Event):
    """A reply did not parse; the model is asked again (or the step gives up)."""

    kind: Literal["retry"] = "retry"
    step: int
    error: str
    giving_up: bool = False


class StepDecided(_Event):
    """The step's action is parsed, checked by the policy and recorded (not yet performed)."""

    kind: Literal["step"] = "step"
    step: int
    max_steps: int
    record: StepRecord


class ActionPerformed(_Event):
    kind: Literal["acted"] = "acted"
    step: int
    timings_ms: dict[str, float] = Field(default_factory=dict)
    error: str | None = None


class RunEnded(_Event):
    kind: Literal["end"] = "end"
    status: str
    reason: str = ""
    answer: Any = None
    steps: int = 0
    run_dir: str | None = None


Event = Annotated[
    Union[RunStarted, StepStarted, ReplyRejected, StepDecided, ActionPerformed, RunEnded],
    Field(discriminator="kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EventHandler = Callable[[Any], None]


def event_from_json(data: dict[str, Any] | str) -> Any:
    """An event back from its JSON form (a live view's or log's line)."""
    if isinstance(data, str):
        return EVENT_ADAPTER.validate_json(data)
    return EVENT_ADAPTER.validate_python(data)


def redacting(handler: EventHandler, redact: Callable[[str], str]) -> EventHandler:
    """``handler`` fed copies of the events with every secret replaced by ***NAME***.

    Watchers show events (live page) and record them (the --record video burns
    the action into its frames), so secrets go no further than the run's logs do.
    """
    def feed(event: Any) -> None:
        if isinstance(event, BaseModel):
            event = event_from_json(map_strings(event.model_dump(mode="json"), redact))
        handler(event)

    return feed


__all__ = [
    "ActionPerformed", "Event", "EventHandler", "ReplyRejected", "RunEnded", "RunStarted", "StepDecided",
    "StepStarted", "event_from_json", "redacting",
]
