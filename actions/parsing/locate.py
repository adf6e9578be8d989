"""Find the one action in a reply: inside the box tokens, after ``Action:``, or bare.

Only finds and scans (syntax); mapping to pixels happens afterwards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from deskpilot.actions.parsing.desktop import CALL_NAMES
from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.memory import MARKER
from deskpilot.actions.parsing.scanner import Call, read_call, read_value
from deskpilot.actions.parsing.thinking import BEGIN_BOX, END_BOX

_NAMES = "|".join(sorted(CALL_NAMES, key=len, reverse=True))
_CALL = re.compile(rf"(?<![\w.])(?:{_NAMES})\(", re.IGNORECASE)
_OBJECT_KEY = re.compile(r"""["'](?:action_type|action)["']\s*:""")
_ACTION_LABEL = re.compile(r"(?<![\w])action[ \t*_]*[:：]", re.IGNORECASE)
# A terminal written bare (the newer GLM-V agents accept it): the whole box in any case ("done",
# "WAIT()"), or outside a box an upper-case word ("... DONE") or a line of its own ("done").
_BARE_BOX = re.compile(r"\s*(done|wait|fail)\s*(?:\(\s*\))?\s*[.!]?\s*", re.IGNORECASE)
_BARE_WORD = re.compile(r"(?<![\w.])(DONE|WAIT|FAIL)(?![\w(])")
_BARE_LINE = re.compile(r"^[ \t*_`>-]*(done|wait|fail)(?:\s*\(\s*\))?[ \t*_`.!]*$", re.IGNORECASE | re.MULTILINE)
_DECODER = json.JSONDecoder()


@dataclass
class Found:
    """The action's syntax tree and where it sits in the text."""

    payload: Call | dict[str, Any]
    start: int
    end: int


def _object_starts(text: str, start: int, end: int) -> set[int]:
    starts = set()
    for key in _OBJECT_KEY.finditer(text, start, end):
        brace = text.rfind("{", max(start, key.start() - 500), key.start())
        if brace >= 0:
            starts.add(brace)
    return starts


def _read_object(text: str, pos: int) -> tuple[dict[str, Any], int]:
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except (ValueError, RecursionError):
        value, end = read_value(text, pos)
    if not isinstance(value, dict):
        raise ParseError('the JSON action must be an object like {"action_type": "click", "box_2d": [[x1,y1,x2,y2]]}')
    return value, end


def _scan(text: str, pos: int) -> Found:
    if text[pos] == "{":
        obj, end = _read_object(text, pos)
        return Found(obj, pos, end)
    call: Call = read_call(text, pos)
    return Found(call, call.start, call.end)


def _in_region(text: str, start: int, end: int, last_first: bool) -> Found | None:
    starts = {m.start() for m in _CALL.finditer(text, start, end)} | _object_starts(text, start, end)
    starts = sorted(starts, reverse=last_first)
    error: ParseError | None = None
    for pos in starts[:20]:
        try:
            return _scan(text, pos)
        except ParseError as exc:
            error = error or exc
    if error is not None:
        raise error
    return None


def _boxes(text: str) -> list[tuple[int, int]]:
    """Box contents; a box ends at its end token, where the next box begins, or (never closed)
    where the Memory section starts: an unclosed box must not swallow the memory."""
    regions = []
    pos = text.find(BEGIN_BOX)
    while pos >= 0 and len(regions) < 20:
        begin = pos + len(BEGIN_BOX)
        close = text.find(END_BOX, begin)
        pos = text.find(BEGIN_BOX, begin)
        ends = [e for e in (close, pos) if e >= 0]
        if not ends:
            memory = MARKER.search(text, begin)
            ends = [memory.start() if memory else len(text)]
        regions.append((begin, min(ends)))
    return regions


def _in_box(text: str, begin: int, close: int) -> Found | None:
    """The call in one box; a call the box cut short (no ')') is closed at the box's end."""
    bare = _BARE_BOX.fullmatch(text, begin, close)
    if bare:
        return Found(Call(name=bare.group(1)), begin, close)
    if close == len(text) or text.startswith((END_BOX, BEGIN_BOX), close):
        return _in_region(text, begin, close, last_first=False)
    head = text[:close]  # an unclosed box, ended where Memory starts
    try:
        return _in_region(head, begin, close, last_first=False)
    except ParseError:
        patched = head.rstrip() + ")"
        found = _in_region(patched, begin, len(patched), last_first=False)
        if found is not None:
            found.end = min(found.end, len(patched) - 1)  # the ')' we added is not in the text
        return found


def _bare(text: str) -> Found | None:
    """A terminal without a call outside any box (last one before the memory)."""
    limit = _before_memory(text)
    found = None
    for pattern in (_BARE_LINE, _BARE_WORD):
        for found in pattern.finditer(text, 0, limit):
            pass
        if found is not None:
            return Found(Call(name=found.group(1)), found.start(1), found.end())
    return None


def _before_memory(text: str) -> int:
    """Where the last Memory section starts: its JSON must not pass for the action."""
    marker = None
    for marker in MARKER.finditer(text):
        pass
    return marker.start() if marker else len(text)


def find_action(text: str, bare: bool = False) -> Found | None:
    """The reply's action, or None if there is no candidate at all.

    ``bare``: also take a terminal written without a call (DONE, WAIT, FAIL)
    outside a box; only for the visible answer, never for thinking text.
    """
    error: ParseError | None = None
    for begin, close in _boxes(text):
        try:
            found = _in_box(text, begin, close)
        except ParseError as exc:
            error = error or exc
            continue
        if found is not None:
            return found
    label = None
    for label in _ACTION_LABEL.finditer(text):
        pass
    try:
        if label is not None:
            found = _in_region(text, label.end(), len(text), last_first=False)
            if found is not None:
                return found
        found = _in_region(text, 0, _before_memory(text), last_first=True)
        if found is None:
            found = _in_region(text, 0, len(text), last_first=True)
    except ParseError as exc:
        raise error or exc from None
    if found is None and bare and BEGIN_BOX not in text:
        found = _bare(text)
    if found is None and error is not None:
        raise error
    return found
