"""The ``Memory:`` list the model carries from step to step.

Unreadable memory never fails a step (it becomes None), but memory the run
could not carry does: deeper than ``MAX_DEPTH`` levels or longer than
``MAX_CHARS`` characters is a ParseError the model can fix by writing less.
"""

from __future__ import annotations

import json
import re
from typing import Any

from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.scanner import _skip, read_value

MAX_DEPTH = 8
MAX_CHARS = 20_000
MARKER = re.compile(r"^[ \t>*#_-]*memory[ \t*_]*[:：][ \t*_]*", re.IGNORECASE | re.MULTILINE)
_NEXT_LABEL = re.compile(r"^[ \t>*#_-]*(?:reason|action|thought|explanation)[ \t*_]*[:：]", re.IGNORECASE | re.MULTILINE)
_WS = re.compile(r"\s*")
_DECODER = json.JSONDecoder()


def _value(text: str, pos: int) -> tuple[Any, int] | None:
    pos = _skip(_WS, text, pos, len(text))
    if not text.startswith(("[", "{"), pos):
        return None
    try:
        return _DECODER.raw_decode(text, pos)
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        pass
    try:
        return read_value(text, pos)
    except (ParseError, RecursionError):
        return None


def _too_deep() -> ParseError:
    return ParseError(f"the Memory list is nested more than {MAX_DEPTH} levels deep: keep it a flat list of notes")


def _depth(value: Any) -> int:
    """Nesting depth of lists/dicts, without recursion (stops counting past MAX_DEPTH)."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
            level.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check(value: Any, size: int) -> None:
    if size > MAX_CHARS:
        raise ParseError(f"the Memory list is longer than {MAX_CHARS} characters: keep only the notes you still need")
    if _depth(value) > MAX_DEPTH:
        raise _too_deep()


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
        _check(value, end - marker.end())
        if isinstance(value, dict):
            value = [value]
        return (value if isinstance(value, list) else None), (marker.start(), end)
    label = _NEXT_LABEL.search(text, marker.end())
    return None, (marker.start(), label.start() if label else len(text))
