"""The GLM-4.5V desktop dialect: builds its one-turn prompt and reads its replies.

The prompt follows the official desktop agent's structure (opening with the
coordinate rule, task, platform, ``###`` action sections with schema blocks,
history with the omitted-screenshot marker, memory, output format, notes,
current screenshot last) in our own words, and never contains special
tokens: the box tokens are the model's to write, not ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deskpilot.actions.parse import parse_box as _parse_box
from deskpilot.actions.parse import parse_glm_reply, split_thinking, strip_tokens
from deskpilot.agent.dialects import glm45v_text as text
from deskpilot.agent.dialects.actionspace import CallSpec, desktop_calls, render_action_space, signature_lines
from deskpilot.agent.dialects.base import HistoryEntry, ParsedStep
from deskpilot.agent.dialects.glm45v_images import fit_budget, shrink, tokens_for
from deskpilot.agent.records.secrets import redact as redact_secrets
from deskpilot.agent.dialects.render import builtin_template, image_marker, load_template, render_parts, scrub
from deskpilot.model_backend.types import ChatRequest, ImagePart, Message, TextPart
from deskpilot.perception.encode import data_url
from deskpilot.perception.observation import Observation
from deskpilot.perception.resize import MAX_PIXELS, MIN_PIXELS


class Sampling(BaseModel):
    """A dialect's sampling defaults (the official agents'); each can be overridden."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 8192
    thinking: bool = True


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
    prompt_template: Path | None = None  # a jinja2 file replacing the built-in wording
    answer_note: str = ""  # e.g. the JSON schema the DONE answer must follow
    user_response: str = ""  # the user's latest reply to a question (GLM-5V block)


class GLM45VDialect:
    """Prompt builder and reply parser for GLM-4.5V on a desktop (platform Ubuntu)."""

    name = "glm-4.5v"
    template_name = "glm-4.5v"
    coordinate_max = 999
    sampling = Sampling(temperature=0.001, max_tokens=8192, thinking=True)

    def __init__(self, options: GLM45VOptions | None = None, **kwargs: Any) -> None:
        self.options = options or GLM45VOptions(**kwargs)
        self._shrunk: dict[int, tuple[Any, Any]] = {}  # id -> (original, small): reused each step
        self._fitted: tuple[Any, Any] | None = None  # (last screenshot, as sent): its history copy is shrunk from it
        path = self.options.prompt_template
        self._template = load_template(path) if path is not None else builtin_template(self.template_name)
        self.calls: list[CallSpec] = self.action_calls()
        # constant per dialect: rendered once, not every step
        self.action_space = render_action_space(self.calls)
        self.action_lines = [{"signature": line, "description": _describe(line, self.calls)}
                             for line in signature_lines(self.calls)]

    def action_calls(self) -> list[CallSpec]:
        return desktop_calls()

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

    def prepare_image(self, image: Any) -> None:
        """Fit and encode the next screenshot ahead of time (the loop calls this while the screen settles)."""
        fitted = fit_budget(image, self.options.max_pixels)
        data_url(fitted, self.options.image_format)  # what an HTTP backend sends (kept with the frozen image)
        self._fitted = (image, fitted)

    def prompt_variables(self, task: str, observation: Observation, history: list[HistoryEntry],
                         memory: list[Any] | None) -> tuple[dict[str, Any], list[Any]]:
        """The template variables and the images their markers stand for (current one last)."""
        opts = self.options
        images: list[Any] = []
        steps = []
        # the newest N screenshots; a failed attempt (no screenshot of its own) takes no slot
        with_image = [i for i, entry in enumerate(history) if entry.screenshot is not None]
        shown = set(with_image[-opts.history_screenshots:]) if opts.history_screenshots else set()
        for index, entry in enumerate(history):
            marker = ""
            if index in shown:
                images.append(self._history_image(entry.screenshot))
                marker = image_marker(len(images) - 1)
            action = strip_tokens(entry.action_text).strip()
            if entry.note:
                action = f"{action} {entry.note}".strip()
            steps.append({"n": index + 1, "thought": strip_tokens(entry.thought).strip(), "action": action,
                          "note": entry.note, "image": marker})
        prepared = self._fitted if self._fitted is not None and self._fitted[0] is observation.image else None
        current = prepared[1] if prepared is not None else fit_budget(observation.image, opts.max_pixels)
        self._fitted = (observation.image, current)
        images.append(current)
        variables = {
            "task": task,
            "platform": opts.platform,
            "action_space": self.action_space,
            "actions": self.action_lines,
            "history": steps,
            "memory": json.dumps(memory if memory is not None else [], ensure_ascii=False),
            "screen": {"width": observation.width, "height": observation.height},
            "coordinate_max": self.coordinate_max,
            "history_screenshots": opts.history_screenshots,
            "history_percent": round(opts.history_scale * 100),
            "notes": self._notes(),
            "user_response": opts.user_response,
            "screenshot": image_marker(len(images) - 1),
        }
        return variables, images

    def build_request(
        self,
        task: str,
        observation: Observation,
        history: list[HistoryEntry],
        memory: list[Any] | None = None,
        *,
        thinking: bool = True,
    ) -> ChatRequest:
        """ONE user turn, always (retries too: a failed attempt is a history step)."""
        variables, images = self.prompt_variables(task, observation, history, memory)
        parts = render_parts(self._template, variables, images, len(images) - 1, self.options.image_format)
        return ChatRequest(messages=[Message(role="user", content=parts)], thinking=thinking)

    def _notes(self) -> list[str]:
        lines = [text.SECRET_NOTE.format(name=name, value=value) for name, value in self.options.secrets.items()]
        if self.options.answer_note.strip():
            lines.append(self.options.answer_note.strip())
        if self.options.extra_instructions.strip():
            lines.append(self.options.extra_instructions.strip())
        return lines

    def parse(self, content: str, reasoning: str | None, width: int, height: int) -> ParsedStep:
        return parse_glm_reply(content, reasoning, width=width, height=height)

    def failed_attempt(self, reply_text: str, error: str) -> HistoryEntry:
        """A reply that could not be performed, as the history step the next prompt shows."""
        visible, _thinking, _open = split_thinking(reply_text)
        said = " ".join(strip_tokens(visible).split())
        if len(said) > text.FAILED_CHARS:
            said = said[: text.FAILED_CHARS - 3] + "..."
        return HistoryEntry(thought=said or "(empty reply)", action_text="",
                            note=text.FAILED_NOTE.format(error=error))

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
        return redact_secrets(value, self.options.secrets)

    @property
    def secrets(self) -> dict[str, str]:
        """Name -> value of what the model may type but no record may hold (see ``redact``)."""
        return self.options.secrets

    def _single(self, observation: Observation, prompt: str, thinking: bool) -> ChatRequest:
        image = ImagePart(image=fit_budget(observation.image, self.options.max_pixels), format=self.options.image_format)
        return ChatRequest(messages=[Message(role="user", content=[image, TextPart(text=scrub(prompt))])],
                           thinking=thinking, temperature=self.sampling.temperature, top_p=self.sampling.top_p)

    def build_locate_request(self, observation: Observation, description: str, *, thinking: bool = False) -> ChatRequest:
        return self._single(observation, text.LOCATE.format(description=description, top=self.coordinate_max), thinking)

    def parse_box(self, content: str, width: int, height: int) -> tuple[int, int, int, int]:
        return _parse_box(content, width, height)

    def build_ask_request(self, observation: Observation, question: str, *, thinking: bool = False) -> ChatRequest:
        return self._single(observation, text.ASK.format(question=question), thinking)

    def answer_text(self, content: str) -> str:
        visible, _thinking, _open = split_thinking(content)
        return strip_tokens(visible).strip()


def _describe(line: str, calls: list[CallSpec]) -> str:
    name = line.split("(", 1)[0]
    return next((c.description for c in calls if name in c.names), "")
