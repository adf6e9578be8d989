"""What the loop carries from one step to the next."""

from __future__ import annotations

from typing import Any, Callable

from PIL import Image

from deskpilot.actions.models import Action
from deskpilot.actions.step import ParsedStep
from deskpilot.agent.dialects.base import HistoryEntry
from deskpilot.agent.desk.diff import compare_live
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

    def is_stuck(self, action: Action, obs: Observation, limit: int, grab: Callable[[], Any] | None = None) -> bool:
        """True when the same action came ``limit`` times in a row and the screen did not change.

        "Changed" is the rule of replay and the screenshot check: a connected
        change of more than ``STUCK_CHANGE`` pixels that persists (with
        ``grab``, over a caret's whole blink, so a blinking caret is no change). A global
        similarity score called a counter going 1 -> 2 "no change" on a large
        screen. Frames are compared only when the action repeats; with
        ``grab`` this may wait up to ~1.3 s (call it off the event loop).
        """
        repeated = action == self._last_action and action.type != "wait"
        if repeated and self._last_frame is not None and not self.screen_changed(self._last_frame, obs.image, grab):
            self._repeats += 1
        else:
            self._repeats = 1
        self._last_action, self._last_frame = action, obs.image
        return self._repeats >= limit

    @staticmethod
    def screen_changed(before: Image.Image, after: Image.Image, grab: Callable[[], Any] | None = None) -> bool:
        diff, _ = compare_live(before, after, grab, small=STUCK_CHANGE)  # a small change cannot grow: no more frames
        return diff.size_mismatch or diff.largest > STUCK_CHANGE


STUCK_CHANGE = 10  # px in one persisting changed region, as replay's MAX_CHANGE: a changed digit is a change
