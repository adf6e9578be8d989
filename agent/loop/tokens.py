"""What a prompt costs, and how much of it a prefix cache can reuse from the step before.

Image tokens are exact (the processor's resize rule, perception.resize).
Text tokens are ESTIMATED at 4 characters (UTF-8 bytes / 4 for non-ASCII
text) per token: GLM's tokenizer is not available here, and the estimate is
only used for shares and totals, never for limits.

vLLM's automatic prefix caching reuses the KV cache of the longest prefix a
new prompt shares with an earlier one, in whole blocks; images are matched
by a hash of their content. ``PrefixTracker`` measures that shared prefix
between consecutive steps' prompts (before rounding to blocks), as the
upper bound of what the cache can save.
"""

from __future__ import annotations

import zlib
import os
from typing import Any

from deskpilot.model_backend.types import ChatRequest, ImagePart, TextPart
from deskpilot.perception.encode import is_frozen
from deskpilot.perception.resize import IMAGE_MARKER_TOKENS, MAX_PIXELS, image_tokens, scaled_size

CHARS_PER_TOKEN = 4
DEFAULT_HISTORY_IMAGES, DEFAULT_HISTORY_SCALE = 4, 0.5  # the official desktop setup


def text_tokens(text: str) -> int:
    """Estimated tokens of ``text`` (see the module docstring)."""
    if not text:
        return 0
    return max(1, -(-len(text.encode("utf-8")) // CHARS_PER_TOKEN))


def default_image_tokens(width: int, height: int, history_images: int) -> int:
    """What the images of a step would cost with the default settings (no budget):
    the full screenshot plus up to 4 history screenshots at 50%."""
    full = image_tokens(width, height, max_pixels=MAX_PIXELS) + IMAGE_MARKER_TOKENS
    hw, hh = scaled_size(width, height, DEFAULT_HISTORY_SCALE)
    small = image_tokens(hw, hh, max_pixels=MAX_PIXELS) + IMAGE_MARKER_TOKENS
    return full + min(history_images, DEFAULT_HISTORY_IMAGES) * small


class PrefixTracker:
    """Remembers the previous step's prompt as segments and measures the shared prefix."""

    def __init__(self, max_pixels: int = MAX_PIXELS) -> None:
        self.max_pixels = max_pixels
        self._previous: list[tuple[str, Any, int]] = []
        self._hashes: dict[int, tuple[Any, Any]] = {}

    def _image_key(self, image) -> Any:
        if is_frozen(image):  # pixels promised never to change: the object is its content
            return ("frozen", id(image))
        cached = self._hashes.get(id(image))
        if cached is not None and cached[0] is image:
            return cached[1]
        digest = (image.size, zlib.crc32(image.tobytes()))  # content identity, as vLLM's image hash; crc32 is cheap
        if len(self._hashes) > 16:
            self._hashes.pop(next(iter(self._hashes)))
        self._hashes[id(image)] = (image, digest)
        return digest

    def segments(self, request: ChatRequest, *, hash_last_image: bool = False) -> list[tuple[str, Any, int]]:
        """(kind, key, tokens) per part, in prompt order; roles count as text."""
        out: list[tuple[str, Any, int]] = []
        parts = [(m.role, p) for m in request.messages for p in m.content]
        last_image = max((i for i, (_, p) in enumerate(parts) if isinstance(p, ImagePart)), default=-1)
        for index, (role, part) in enumerate(parts):
            if isinstance(part, TextPart):
                out.append(("text", (role, part.text), text_tokens(part.text)))
            else:
                # the newest screenshot is new every step: hashing 6 MB of it would buy nothing
                key = self._image_key(part.image) if (index != last_image or hash_last_image) else os.urandom(8)
                tokens = image_tokens(part.image.width, part.image.height, max_pixels=self.max_pixels)
                out.append(("image", key, tokens + IMAGE_MARKER_TOKENS))
        return out

    def measure(self, request: ChatRequest) -> tuple[int, int]:
        """(shared prefix tokens with the previous call's request, this request's tokens)."""
        current = self.segments(request)
        shared = 0
        for old, new in zip(self._previous, current):
            if old == new:
                shared += new[2]
                continue
            if old[0] == new[0] == "text":  # a text part that starts the same: count the common characters
                a, b = old[1][1], new[1][1]
                n = len(os.path.commonprefix([a, b])) if old[1][0] == new[1][0] else 0
                shared += text_tokens(b[:n])
            break
        self._previous = current
        return shared, sum(tokens for _, _, tokens in current)
