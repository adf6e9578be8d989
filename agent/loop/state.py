"""What the loop carries from one step to the next."""

from __future__ import annotations

from typing import Any

from PIL import Image

from deskpilot.actions.models import Action
from deskpilot.actions.step import ParsedStep
from deskpilot.agent.dialects.base import HistoryEntry
from deskpilot.agent.desk.screens import similarity
from deskpilot.perception.observation import Observation


class RunState:
    """History and memory carried between steps, and the stuck detector.

    Only the newest `keep_images` history screenshots are held in memory (the
    prompt shows the last few); older entries keep their text only.
    """

    def __init__(self, keep_images: int = 4) -> None:
        self.keep_images = keep_images
        self.history: list[HistoryEntry] = []
        self.memory: list[Any] | None = None
        self._last_action: Action | None = None
        self._last_frame: Image.Image | None = None
        self._repeats = 0

    def remember(self, parsed: ParsedStep, obs: Observation, note: str = "") -> None:
        text = f"{parsed.action_text} {note}".strip()
        self.history.append(HistoryEntry(thought=parsed.thought, action_text=text, screenshot=obs.image))
        if len(self.history) > self.keep_images:
            self.history[-self.keep_images - 1].screenshot = None
        # No (readable) Memory: section resets memory, as the official agents do.
        self.memory = parsed.memory if parsed.memory is not None else []

    def is_stuck(self, action: Action, obs: Observation, limit: int) -> bool:
        repeated = action == self._last_action and action.type != "wait"
        # comparing frames costs ~10 ms at 1080p: only when the action repeats
        if repeated and self._last_frame is not None and similarity(self._last_frame, obs.image) >= 0.999:
            self._repeats += 1
        else:
            self._repeats = 1
        self._last_action, self._last_frame = action, obs.image
        return self._repeats >= limit
