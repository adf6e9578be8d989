"""Numbers out of whatever the model wrote for a box or point argument.

Seen forms: '[x,y]', '[[x,y]]', '(x,y)', '<x,y>', '[x1,y1,x2,y2]',
'<bbox>x1 y1 x2 y2</bbox>', '<point>x y</point>', as a quoted string or as a
bare literal. Anything else (letters, NaN, a wrong count) is rejected.
"""

from __future__ import annotations

import re
from typing import Any

from deskpilot.actions.parsing.errors import ParseError

_NUMBER = r"[-+]?(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})(?:[eE][-+]?\d{1,3})?"
_TOKEN = re.compile(rf"({_NUMBER})|(\s+)|([\[\]()<>,;，、［］（）])|(.)", re.DOTALL)
_TAGS = re.compile(r"</?(?:bbox|point)>|<\|(?:begin|end)_of_box\|>", re.IGNORECASE)
MAX_CHARS = 300


def _bad(what: str) -> ParseError:
    return ParseError(f"the {what} must be [x,y] with numbers from 0 to 999")


def numbers_in_text(text: str, what: str) -> list[float]:
    """All numbers of a coordinate string; a ParseError if anything else is in it."""
    if len(text) > MAX_CHARS:
        raise _bad(what)
    numbers: list[float] = []
    for match in _TOKEN.finditer(_TAGS.sub(" ", text)):
        if match.group(4) is not None:
            raise _bad(what)
        if match.group(1) is not None:
            numbers.append(float(match.group(1)))
    return numbers


def flatten(value: Any, what: str, depth: int = 0) -> list[float]:
    """Numbers of a (possibly nested) literal, in order."""
    if depth > 3:
        raise _bad(what)
    if isinstance(value, bool) or value is None:
        raise _bad(what)
    if isinstance(value, (int, float)):
        try:
            return [float(value)]
        except OverflowError:  # an integer with hundreds of digits
            raise _bad(what) from None
    if isinstance(value, str):
        return numbers_in_text(value, what)
    if isinstance(value, (list, tuple)):
        out: list[float] = []
        for item in value:
            out.extend(flatten(item, what, depth + 1))
        return out
    raise _bad(what)


def coordinate_numbers(value: Any, what: str) -> list[float]:
    """The 2 (point) or 4 (box) numbers of an argument, else a ParseError."""
    numbers = flatten(value, what)
    if len(numbers) not in (2, 4):
        raise _bad(what)
    return numbers
