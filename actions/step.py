"""One model reply, understood: what the parser hands to the loop."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from deskpilot.actions.models import Action


class ParsedStep(BaseModel):
    """One model reply, understood: the action in pixels plus what explains it."""

    action: Action
    thought: str = ""
    reasoning: str | None = None
    action_text: str = ""  # the call as written, box tokens stripped (goes into history)
    model_points: list[tuple[float, float]] = Field(default_factory=list)  # thousandths
    element_info: str | None = None
    memory: list[Any] | None = None
    raw: str = ""
