"""Screenshot sizes for the GLM-4.5V prompt: budget-fitting and history shrinking.

Resizing never changes what coordinates mean: the model answers in
thousandths of the ORIGINAL screenshot, so only cost and detail change.
"""

from __future__ import annotations

from PIL import Image

from deskpilot.perception.encode import freeze
from deskpilot.perception.resize import FACTOR, IMAGE_MARKER_TOKENS, image_tokens, smart_resize


def _rounded_area(width: int, height: int) -> int:
    return max(FACTOR, round(width / FACTOR) * FACTOR) * max(FACTOR, round(height / FACTOR) * FACTOR)


def fit_budget(image: Image.Image, max_pixels: int) -> Image.Image:
    """The image itself if the processor would take it whole, else shrunk to the budget."""
    if _rounded_area(image.width, image.height) <= max_pixels:
        return image
    size = smart_resize(image.width, image.height, max_pixels=max_pixels)
    return freeze(image.resize(size, Image.Resampling.BILINEAR))  # encoded once, however often it is sent


def shrink(image: Image.Image, scale: float, max_pixels: int) -> Image.Image:
    """A history screenshot at ``scale`` of its size (sides at least 28 px)."""
    if scale >= 1:
        return fit_budget(image, max_pixels)
    factor = round(1 / scale)
    if abs(factor * scale - 1) < 1e-9 and image.width // factor >= FACTOR and image.height // factor >= FACTOR:
        small = image.reduce(factor)  # exact integer ratio: fast box filter
    else:
        size = (max(FACTOR, round(image.width * scale)), max(FACTOR, round(image.height * scale)))
        small = image.resize(size, Image.Resampling.BILINEAR)
    return freeze(fit_budget(small, max_pixels))


def tokens_for(image: Image.Image, max_pixels: int) -> int:
    """What one image costs in the prompt, marker tokens included."""
    return image_tokens(image.width, image.height, max_pixels=max_pixels) + IMAGE_MARKER_TOKENS
