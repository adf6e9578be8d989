"""ChatRequest -> OpenAI chat messages (images inline as data URLs)."""

from __future__ import annotations

from typing import Literal

from deskpilot.model_backend.types import ChatRequest, ImagePart, TextPart
from deskpilot.perception.encode import data_url

ImageFormat = Literal["png", "jpeg"]


def _part(part: TextPart | ImagePart, image_format: ImageFormat) -> dict:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    fmt: ImageFormat = "jpeg" if "jpeg" in (image_format, part.format) else "png"
    return {"type": "image_url", "image_url": {"url": data_url(part.image, fmt)}}


def request_to_openai_messages(request: ChatRequest, image_format: ImageFormat = "png") -> list[dict]:
    """OpenAI-format messages; text-only messages are sent as plain strings.

    JPEG is used when either the backend or the part asks for it.
    """
    out: list[dict] = []
    for msg in request.messages:
        texts = [p for p in msg.content if isinstance(p, TextPart)]
        if len(texts) == len(msg.content):
            out.append({"role": msg.role, "content": "".join(p.text for p in texts)})
        else:
            out.append({"role": msg.role, "content": [_part(p, image_format) for p in msg.content]})
    return out
