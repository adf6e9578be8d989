"""GLM-4.5V's resize rule and image-token arithmetic.

The vision tower uses 14 px patches merged 2x2, so each side is rounded to a
multiple of 28 and every 28x28 block is one token. Model coordinates stay
relative to the ORIGINAL image: this resize only decides what is sent and
what it costs.
"""

from __future__ import annotations

import math

FACTOR = 28
MIN_PIXELS = 112 * 112
# A 2560x1440 screen still fits unresized under this budget.
MAX_PIXELS = 28 * 28 * 6144
IMAGE_MARKER_TOKENS = 2  # begin/end image tokens around each image


def smart_resize(
    width: int, height: int, *, max_pixels: int = MAX_PIXELS, min_pixels: int = MIN_PIXELS
) -> tuple[int, int]:
    """Return the (width, height) the processor will feed the vision tower."""
    if width < FACTOR or height < FACTOR:
        raise ValueError(f"image {width}x{height} is too small: both sides must be at least {FACTOR} px")
    if max(width, height) / min(width, height) > 200:
        raise ValueError(f"image {width}x{height} is too elongated (aspect ratio over 200)")
    w = round(width / FACTOR) * FACTOR
    h = round(height / FACTOR) * FACTOR
    if w * h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        w = max(FACTOR, math.floor(width / beta / FACTOR) * FACTOR)
        h = max(FACTOR, math.floor(height / beta / FACTOR) * FACTOR)
    elif w * h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        w = math.ceil(width * beta / FACTOR) * FACTOR
        h = math.ceil(height * beta / FACTOR) * FACTOR
    return w, h


def image_tokens(width: int, height: int, *, max_pixels: int = MAX_PIXELS) -> int:
    """Image placeholder tokens for one image (without the 2 marker tokens)."""
    w, h = smart_resize(width, height, max_pixels=max_pixels)
    return (w // FACTOR) * (h // FACTOR)
