"""The request/reply shapes every backend speaks."""

from __future__ import annotations

from typing import Literal, Union

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field


class TextPart(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image to show the model; encoded by the backend (PNG or JPEG)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    type: Literal["image"] = "image"
    image: Image.Image
    format: Literal["png", "jpeg"] = "png"


Part = Union[TextPart, ImagePart]


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: list[Part]


class ChatRequest(BaseModel):
    messages: list[Message]
    max_tokens: int = 8192
    temperature: float | None = None
    top_p: float | None = None
    thinking: bool = True
    stop: list[str] | None = None
    extra: dict = Field(default_factory=dict)

    def image_count(self) -> int:
        return sum(isinstance(p, ImagePart) for m in self.messages for p in m.content)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Reply(BaseModel):
    content: str
    reasoning: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float = 0.0
    model: str | None = None
    finish_reason: str | None = None
