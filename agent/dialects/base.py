"""The contract between the loop and a model's prompt/answer format."""

from __future__ import annotations

from typing import Any, Protocol

from PIL import Image
from pydantic import BaseModel, ConfigDict

from deskpilot.actions.step import ParsedStep  # re-exported: the parser builds it
from deskpilot.model_backend.types import ChatRequest
from deskpilot.perception.observation import Observation


class HistoryEntry(BaseModel):
    """A past step as the prompt shows it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    thought: str = ""
    action_text: str = ""
    screenshot: Image.Image | None = None
    note: str = ""  # shown after the action, e.g. why it was not performed


class Dialect(Protocol):
    name: str

    def build_request(
        self,
        task: str,
        observation: Observation,
        history: list[HistoryEntry],
        memory: list[Any] | None = None,
        *,
        thinking: bool = True,
    ) -> ChatRequest: ...

    def parse(self, content: str, reasoning: str | None, width: int, height: int) -> ParsedStep:
        """Raise actions.parse.ParseError (and nothing else) on a bad reply."""

    def failed_attempt(self, reply_text: str, error: str) -> HistoryEntry:
        """A reply that could not be performed, as a history step: the retry is a
        fresh single-turn prompt whose history ends with it (never a multi-turn chat)."""

    def image_tokens(self, request: ChatRequest) -> int: ...

    def build_locate_request(self, observation: Observation, description: str, *, thinking: bool = False) -> ChatRequest: ...

    def parse_box(self, content: str, width: int, height: int) -> tuple[int, int, int, int]:
        """A grounding answer -> (x1, y1, x2, y2) pixels; ParseError if absent."""

    def build_ask_request(self, observation: Observation, question: str, *, thinking: bool = False) -> ChatRequest: ...

    def answer_text(self, content: str) -> str:
        """The visible answer of a free-form reply (box tokens and think text removed)."""
