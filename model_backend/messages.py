"""ChatRequest -> OpenAI chat messages (images inline as data URLs)."""

from __future__ import annotations

import base64
import io
from typing import Literal

from PIL import Image

from model_backend.types import ChatRequest, ImagePart, TextPart

ImageFormat = Literal["png", "jpeg"]


def image_data_url(image: Image.Image, image_format: ImageFormat = "png") -> str:
    """Encode a PIL image as a data URL (PNG level 1 is ~3x faster than the default)."""
    buf = io.BytesIO()
    if image_format == "jpeg":
        image.convert("RGB").save(buf, format="JPEG", quality=85)
    else:
        image.save(buf, format="PNG", compress_level=1)
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"data:image/{image_format};base64,{b64}"


def _part(part: TextPart | ImagePart, image_format: ImageFormat) -> dict:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    fmt: ImageFormat = "jpeg" if "jpeg" in (image_format, part.format) else "png"
    return {"type": "image_url", "image_url": {"url": image_data_url(part.image, fmt)}}


def request_to_openai_messages(request: ChatRequest, image_format: ImageFormat = "png") -> list[dict]:
    """OpenAI-format messages; text-only messages are sent as plain strings.

    JPEG is used when either the backend or the part asks for it.
    """
    out = []
    for msg in request.messages:
        if all(isinstance(p, TextPart) for p in msg.content):
            out.append({"role": msg.role, "content": "".join(p.text for p in msg.content)})
        else:
            out.append({"role": msg.role, "content": [_part(p, image_format) for p in msg.content]})
    return out
