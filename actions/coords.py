"""Model coordinates (thousandths of the ORIGINAL screenshot) to screen pixels.

GLM-4.5V answers in integers 0-999 relative to the original screenshot's
width and height, never the resized image the processor saw; 1000 is
tolerated as the far edge. Getting this mapping wrong is the most common
cause of off-target clicks, so it lives in one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from deskpilot.actions.parsing.errors import ParseError

SCALE = 1000


def check_thousandths(value: object, what: str = "start_box") -> float:
    """Return ``value`` as a float in [0, 1000] or raise a ParseError for the model."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"the {what} must be [x,y] with numbers from 0 to 999")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > SCALE:
        raise ParseError(f"the {what} must be [x,y] with numbers from 0 to 999")
    return number


def to_pixel(value: float, size: int) -> int:
    """Map one thousandths value onto a side of ``size`` pixels, clamped inside."""
    if size < 1:
        raise ValueError(f"screen side must be at least 1 px, got {size}")
    number = check_thousandths(value)
    return min(max(round(number * size / SCALE), 0), size - 1)


def to_pixels(point: Sequence[float], width: int, height: int) -> tuple[int, int]:
    """Map an (x, y) point in thousandths to pixels on a width x height screen."""
    return to_pixel(point[0], width), to_pixel(point[1], height)


def centre(values: Sequence[float], what: str = "start_box") -> tuple[float, float]:
    """A point [x,y] as is, or the centre of a box [x1,y1,x2,y2], in thousandths."""
    numbers = [check_thousandths(v, what) for v in values]
    if len(numbers) == 2:
        return numbers[0], numbers[1]
    if len(numbers) == 4:
        return (numbers[0] + numbers[2]) / 2, (numbers[1] + numbers[3]) / 2
    raise ParseError(f"the {what} must be [x,y] with numbers from 0 to 999")


def box_to_pixels(values: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A box (or a point, as a zero-size box) in thousandths -> (x1, y1, x2, y2) pixels."""
    numbers = [check_thousandths(v, "box") for v in values]
    if len(numbers) == 2:
        numbers = numbers * 2
    if len(numbers) != 4:
        raise ParseError("the box must be [x1,y1,x2,y2] with numbers from 0 to 999")
    x1, x2 = sorted((to_pixel(numbers[0], width), to_pixel(numbers[2], width)))
    y1, y2 = sorted((to_pixel(numbers[1], height), to_pixel(numbers[3], height)))
    return x1, y1, x2, y2


def to_thousandths(pixel: float, size: int) -> float:
    """The inverse mapping (pixel -> thousandths), for formatting and tests."""
    if size < 1:
        raise ValueError(f"screen side must be at least 1 px, got {size}")
    return pixel * SCALE / size
