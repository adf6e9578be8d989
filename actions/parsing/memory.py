"""The ``Memory:`` list the model carries from step to step.

Bad memory never fails a step: anything unreadable becomes None.
"""

from __future__ import annotations

import json
import re
from typing import Any

from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.scanner import read_value

MARKER = re.compile(r"^[ \t>*#_-]*memory[ \t*_]*[:：][ \t*_]*", re.IGNORECASE | re.MULTILINE)
_NEXT_LABEL = re.compile(r"^[ \t>*#_-]*(?:reason|action|thought|explanation)[ \t*_]*[:：]", re.IGNORECASE | re.MULTILINE)
_DECODER = json.JSONDecoder()


def _value(text: str, pos: int) -> tuple[Any, int] | None:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if not text.startswith(("[", "{"), pos):
        return None
    try:
        return _DECODER.raw_decode(text, pos)
    except (ValueError, RecursionError):
        pass
    try:
        return read_value(text, pos)
    except (ParseError, RecursionError):
        return None


def find_memory(text: str) -> tuple[list[Any] | None, tuple[int, int] | None]:
    """The last Memory section's list and its span in ``text`` (None, None if absent)."""
    marker = None
    for marker in MARKER.finditer(text):
        pass
    if marker is None:
        return None, None
    found = _value(text, marker.end())
    if found is not None:
        value, end = found
        if isinstance(value, dict):
            value = [value]
        return (value if isinstance(value, list) else None), (marker.start(), end)
    label = _NEXT_LABEL.search(text, marker.end())
    return None, (marker.start(), label.start() if label else len(text))
