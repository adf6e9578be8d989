"""A grounding answer ("where is X?") -> a pixel box."""

from __future__ import annotations

import re

from deskpilot.actions.coords import box_to_pixels
from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.points import coordinate_numbers
from deskpilot.actions.parsing.thinking import BEGIN_BOX, END_BOX, split_thinking

NO_BOX = "no box found: answer with a box [x1,y1,x2,y2] in thousandths (0-999)"
_GROUP = re.compile(
    r"<bbox>[^<>]{0,200}</bbox>|<point>[^<>]{0,200}</point>|\[\[[^\[\]]{0,200}\]\]|\[[^\[\]]{0,200}\]|\([^()]{0,200}\)|<[^<>|]{0,200}>",
    re.IGNORECASE,
)


def _region(content: str) -> tuple[str, bool]:
    visible, thinking, open_think = split_thinking(content)
    text = visible if visible.strip() or not open_think else thinking
    begin = text.find(BEGIN_BOX)
    if begin < 0:
        return text, False
    begin += len(BEGIN_BOX)
    end = text.find(END_BOX, begin)
    return text[begin : end if end >= 0 else len(text)], True


def parse_box(content: str, width: int, height: int) -> tuple[int, int, int, int]:
    """The first box (or point, as a zero-size box) of a reply, in pixels."""
    if not isinstance(content, str):
        raise ParseError(NO_BOX)
    region, boxed = _region(content[:200_000])
    candidates = [m.group() for m in _GROUP.finditer(region)]
    if boxed:
        candidates.append(region)
    for candidate in candidates[:50]:
        try:
            numbers = coordinate_numbers(candidate, "box")
        except ParseError:
            continue
        return box_to_pixels(numbers, width, height)
    raise ParseError(NO_BOX)
