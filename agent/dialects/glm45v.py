"""The GLM-4.5V desktop dialect: builds its one-turn prompt and reads its replies."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deskpilot.actions.parse import parse_box as _parse_box
from deskpilot.actions.parse import parse_glm_reply, split_thinking, strip_tokens
from deskpilot.agent.dialects import glm45v_text as text
from deskpilot.agent.dialects.base import HistoryEntry, ParsedStep
from deskpilot.agent.dialects.glm45v_images import fit_budget, shrink, tokens_for
from deskpilot.model_backend.types import ChatRequest, ImagePart, Message, Part, TextPart
from deskpilot.perception.observation import Observation
from deskpilot.perception.resize import MAX_PIXELS, MIN_PIXELS


class GLM45VOptions(BaseModel):
    """How the prompt is built; defaults follow the official desktop setup."""

    model_config = ConfigDict(extra="forbid")
    history_screenshots: int = Field(default=4, ge=0, le=50)
    history_scale: float = Field(default=0.5, gt=0, le=1)
    max_pixels: int = Field(default=MAX_PIXELS, ge=MIN_PIXELS)
    extra_instructions: str = ""
    secrets: dict[str, str] = Field(default_factory=dict)
    platform: str = "Ubuntu"
    image_format: Literal["png", "jpeg"] = "png"


class _Parts:
    """Collects message parts, merging neighbouring text."""

    def __init__(self) -> None:
        self.parts: list[Part] = []

    def text(self, value: str) -> None:
        if self.parts and isinstance(self.parts[-1], TextPart):
            self.parts[-1] = TextPart(text=self.parts[-1].text + value)
        else:
            self.parts.append(TextPart(text=value))

    def image(self, image: Any, fmt: str) -> None:
        self.parts.append(ImagePart(image=image, format=fmt))


class GLM45VDialect:
    """Prompt builder and reply parser for GLM-4.5V on a desktop (platform Ubuntu)."""

    name = "glm-4.5v"

    def __init__(self, options: GLM45VOptions | None = None, **kwargs: Any) -> None:
        self.options = options or GLM45VOptions(**kwargs)
        self._shrunk: dict[int, tuple[Any, Any]] = {}  # id -> (original, small): reused each step
        self._fitted: tuple[Any, Any] | None = None  # (last screenshot, as sent): its history copy is shrunk from it

    def _history_image(self, image: Any) -> Any:
        cached = self._shrunk.get(id(image))
        if cached is not None and cached[0] is image:
            return cached[1]
        scale = self.options.history_scale  # a budget shrinks history screenshots in proportion (never below the minimum)
        fitted = self._fitted if self._fitted is not None and self._fitted[0] is image else None
        source = fitted[1] if fitted is not None and fitted[1] is not image else image  # shrink what was sent: cheaper
        small = shrink(source, scale, max(MIN_PIXELS, int(self.options.max_pixels * scale * scale)))
        if len(self._shrunk) >= 2 * max(self.options.history_screenshots, 1):
            self._shrunk.pop(next(iter(self._shrunk)))
        self._shrunk[id(image)] = (image, small)
        return small

    def build_request(
        self,
        task: str,
        observation: Observation,
        history: list[HistoryEntry],
        memory: list[Any] | None = None,
        *,
        thinking: bool = True,
    ) -> ChatRequest:
        """ONE user turn: instructions, history (recent screenshots inline), memory, current screenshot last."""
        opts = self.options
        parts = _Parts()
        parts.text(text.HEAD.format(task=task, platform=opts.platform, action_space=text.ACTION_SPACE))
        first_with_image = len(history) - opts.history_screenshots
        for index, entry in enumerate(history):
            shown = index >= first_with_image and entry.screenshot is not None
            parts.text((text.STEP_WITH_IMAGE if shown else text.STEP_OMITTED).format(n=index + 1))
            if shown:
                parts.image(self._history_image(entry.screenshot), opts.image_format)
            body = text.STEP_BODY.format(thought=strip_tokens(entry.thought).strip(), action=strip_tokens(entry.action_text).strip())
            parts.text(body)
        parts.text(text.TAIL.format(
            memory=json.dumps(memory if memory is not None else [], ensure_ascii=False),
            count=opts.history_screenshots,
            percent=round(opts.history_scale * 100),
            notes=self._notes(),
        ))
        current = fit_budget(observation.image, opts.max_pixels)
        self._fitted = (observation.image, current)
        parts.image(current, opts.image_format)
        return ChatRequest(messages=[Message(role="user", content=parts.parts)], thinking=thinking)

    def _notes(self) -> str:
        lines = [text.SECRET_NOTE.format(name=name, value=value) for name, value in self.options.secrets.items()]
        if self.options.extra_instructions.strip():
            lines.append(self.options.extra_instructions.strip())
        return "".join(line + "\n" for line in lines)

    def parse(self, content: str, reasoning: str | None, width: int, height: int) -> ParsedStep:
        return parse_glm_reply(content, reasoning, width=width, height=height)

    def build_retry(self, request: ChatRequest, reply_text: str, error: str) -> ChatRequest:
        """The same request, the bad reply as the assistant's turn, and the short error."""
        messages = [
            *request.messages,
            Message(role="assistant", content=[TextPart(text=reply_text)]),
            Message(role="user", content=[TextPart(text=text.RETRY.format(error=error))]),
        ]
        return request.model_copy(update={"messages": messages})

    def image_tokens(self, request: ChatRequest) -> int:
        """Image tokens of every image in the request (placeholders plus markers)."""
        return sum(
            tokens_for(part.image, self.options.max_pixels)
            for message in request.messages
            for part in message.content
            if isinstance(part, ImagePart)
        )

    def redact(self, value: str) -> str:
        """``value`` with every secret replaced by ***NAME***, for logs and reports."""
        for name, secret in sorted(self.options.secrets.items(), key=lambda kv: len(kv[1]), reverse=True):
            if secret:
                value = value.replace(secret, f"***{name}***")
        return value

    def _single(self, observation: Observation, prompt: str, thinking: bool) -> ChatRequest:
        image = ImagePart(image=fit_budget(observation.image, self.options.max_pixels), format=self.options.image_format)
        return ChatRequest(messages=[Message(role="user", content=[image, TextPart(text=prompt)])], thinking=thinking)

    def build_locate_request(self, observation: Observation, description: str, *, thinking: bool = False) -> ChatRequest:
        return self._single(observation, text.LOCATE.format(description=description), thinking)

    def parse_box(self, content: str, width: int, height: int) -> tuple[int, int, int, int]:
        return _parse_box(content, width, height)

    def build_ask_request(self, observation: Observation, question: str, *, thinking: bool = False) -> ChatRequest:
        return self._single(observation, text.ASK.format(question=question), thinking)

    def answer_text(self, content: str) -> str:
        visible, _thinking, _open = split_thinking(content)
        return strip_tokens(visible).strip()
