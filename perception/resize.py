"""GLM-4.5V's resize rule and image-token arithmetic.

The vision tower uses 14 px patches merged 2x2, so each side is rounded to a
multiple of 28 and every 28x28 block is one token. Model coordinates stay
relative to the ORIGINAL image: this resize only decides what is sent and
what it costs.
"""

from __future__ import annotations

import math

from PIL import Image

FACTOR = 28
# GLM-4.5V's preprocessor_config "size" (shortest_edge / longest_edge). The
# processor treats a still image as 2 frames (temporal patch 2), so the
# per-image budgets are half of these.
SHORTEST_EDGE = 112 * 112
LONGEST_EDGE = 14 * 14 * 2 * 2 * 2 * 6144
TEMPORAL_PATCH = 2
MIN_PIXELS = SHORTEST_EDGE // TEMPORAL_PATCH  # 6272
# A 2560x1440 screen still fits unresized under this budget.
MAX_PIXELS = LONGEST_EDGE // TEMPORAL_PATCH  # 28 * 28 * 6144
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


def resize_for_model(image: Image.Image, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image at the size the GLM processor would use (bicubic, like the processor).

    Returns ``image`` itself when no resize is needed. Only worth calling to
    shrink what is sent; coordinates stay relative to the original image.
    """
    size = smart_resize(image.width, image.height, max_pixels=max_pixels)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC)


def scale(image: Image.Image, factor: float) -> Image.Image:
    """Shrink ``image`` by ``factor`` (0.5 for history screenshots).

    Integer reciprocals use ``Image.reduce`` (box average, a few ms for 1080p);
    other factors fall back to a bilinear resize.
    """
    if not 0 < factor <= 1:
        raise ValueError(f"scale factor must be in (0, 1], got {factor}")
    if factor == 1:
        return image
    inverse = 1 / factor
    if abs(inverse - round(inverse)) < 1e-9:
        return image.reduce(round(inverse))
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BILINEAR)


TOKEN_PIXELS = FACTOR * FACTOR  # one image token is one 28x28 block


def budget_pixels(budget: str | int) -> int:
    """A screenshot budget -> the max_pixels the resize rule takes.

    ``budget`` is a token count per screenshot (``1200`` or ``"1200"``), a
    pixel count (``"1000000px"``), or a size (``"1280x720"``: its area).
    A budget of N tokens gives at most N image tokens (plus the 2 markers):
    every token is one 28x28 block of the resized image.
    """
    text = str(budget).strip().lower().replace("×", "x")
    try:
        if text.endswith("px"):
            pixels = int(text[:-2].strip())
        elif "x" in text:
            w, h = (int(v) for v in text.split("x"))
            pixels = w * h
        else:
            pixels = int(text) * TOKEN_PIXELS
    except ValueError:
        raise ValueError(f"an image budget is tokens (1200), pixels (1000000px) or a size (1280x720); got {budget!r}") from None
    if pixels < MIN_PIXELS:
        raise ValueError(f"image budget {budget!r} is below the model's minimum of {MIN_PIXELS // TOKEN_PIXELS} tokens "
                         f"({MIN_PIXELS} pixels)")
    return min(pixels, MAX_PIXELS)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Size of a screenshot shrunk by ``scale`` the way history screenshots are (sides at least 28)."""
    if scale >= 1:
        return width, height
    factor = round(1 / scale)
    if abs(factor * scale - 1) < 1e-9 and width // factor >= FACTOR and height // factor >= FACTOR:
        return width // factor, height // factor
    return max(FACTOR, round(width * scale)), max(FACTOR, round(height * scale))
