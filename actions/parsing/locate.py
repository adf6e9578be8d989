"""Find the one action in a reply: inside the box tokens, after ``Action:``, or bare.

Only finds and scans (syntax); mapping to pixels happens afterwards.

Why it is linear: candidate starts come from regular expressions over the text
(one pass each); every start is scanned at most once per reply (results are
kept by position), one scan reads at most ``MAX_ACTION_CHARS`` characters, and
a reply gets at most ``MAX_SCANS`` scans in all. Adding syntax means adding a
name to ``desktop.CALL_NAMES`` (or a pattern to ``_starts``); the budget holds.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from deskpilot.actions.parsing.desktop import CALL_NAMES
from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.memory import MARKER
from deskpilot.actions.parsing.scanner import MAX_ACTION_CHARS, MAX_DIGITS, Call, read_call, read_value
from deskpilot.actions.parsing.thinking import BEGIN_BOX, END_BOX

MAX_SCANS = 32  # candidate starts scanned per reply (a real reply has one to three)
MAX_PER_REGION = 20
MAX_BOXES = 20
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w{0,40})\(")  # kept if the name is in CALL_NAMES
_OBJECT_KEY = re.compile(r"""["'](?:action_type|action)["']\s*:""")
_ACTION_LABEL = re.compile(r"(?<![\w])action[ \t*_]*[:：]", re.IGNORECASE)
# A terminal written bare (the newer GLM-V agents accept it): the whole box in any case ("done",
# "WAIT()"), or outside a box an upper-case word ("... DONE") or a line of its own ("done").
_BARE_BOX = re.compile(r"\s*(done|wait|fail)\s*(?:\(\s*\))?\s*[.!]?\s*", re.IGNORECASE)
_BARE_WORD = re.compile(r"(?<![\w.])(DONE|WAIT|FAIL)(?![\w(])")
_BARE_LINE = re.compile(r"^[ \t*_`>-]*(done|wait|fail)(?:\s*\(\s*\))?[ \t*_`.!]*$", re.IGNORECASE | re.MULTILINE)


def _bounded_int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_DIGITS:
        raise ParseError(f"a number in the action has more than {MAX_DIGITS} digits")
    return int(token)


def _no_constant(token: str) -> float:
    raise ParseError(f"{token} is not a number the action can use")


_DECODER = json.JSONDecoder(parse_int=_bounded_int, parse_constant=_no_constant)


@dataclass
class Found:
    """The action's syntax tree and where it sits in the text."""

    payload: Call | dict[str, Any]
    start: int
    end: int


@dataclass
class Budget:
    """The scans of one reply: each (text, start) once, at most MAX_SCANS in all."""

    scans: int = 0
    results: dict[tuple[int, int], Found | ParseError] = field(default_factory=dict)
    starts: dict[int, tuple[list[int], list[int]]] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # texts made while parsing stay alive: id() keys the caches

    def candidates(self, text: str) -> tuple[list[int], list[int]]:
        """Where calls and JSON action keys start in ``text`` (one regex pass each, kept)."""
        if id(text) not in self.starts:
            calls = [m.start() for m in _CALL.finditer(text) if m.group(1).lower() in CALL_NAMES]
            self.starts[id(text)] = calls, [m.start() for m in _OBJECT_KEY.finditer(text)]
        return self.starts[id(text)]

    def scan(self, text: str, pos: int) -> Found | ParseError | None:
        """The scan at ``pos`` (a Found or the ParseError it raised), None once spent."""
        key = (id(text), pos)
        if key not in self.results:
            if self.scans >= MAX_SCANS:
                return None
            self.scans += 1
            try:
                self.results[key] = _scan(text, pos)
            except ParseError as exc:
                self.results[key] = exc
        return self.results[key]


def _read_object(text: str, pos: int) -> tuple[dict[str, Any], int]:
    window = text[pos : pos + MAX_ACTION_CHARS]
    try:
        value, end = _DECODER.raw_decode(window)
        end += pos
    except ParseError:
        raise
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


def _within(positions: list[int], start: int, end: int, last_first: bool) -> list[int]:
    low, high = bisect_left(positions, start), bisect_left(positions, end)
    if last_first:
        return positions[max(low, high - MAX_PER_REGION) : high]
    return positions[low : min(high, low + MAX_PER_REGION)]


def _starts(text: str, start: int, end: int, last_first: bool, budget: Budget) -> list[int]:
    """The first (or last) MAX_PER_REGION candidate starts in text[start:end]."""
    calls, keys = budget.candidates(text)
    braces = {text.rfind("{", max(start, key - 500), key) for key in _within(keys, start, end, last_first)} - {-1}
    starts = sorted(set(_within(calls, start, end, last_first)) | braces, reverse=last_first)
    return starts[:MAX_PER_REGION]


def _in_region(text: str, start: int, end: int, last_first: bool, budget: Budget) -> Found | None:
    error: ParseError | None = None
    for pos in _starts(text, start, end, last_first, budget):
        result = budget.scan(text, pos)
        if result is None:
            break
        if isinstance(result, Found):
            return result
        error = error or result
    if error is not None:
        raise error
    return None


def _boxes(text: str) -> list[tuple[int, int]]:
    """Box contents; a box ends at its end token, where the next box begins, or (never closed)
    where the Memory section starts: an unclosed box must not swallow the memory."""
    regions: list[tuple[int, int]] = []
    pos = text.find(BEGIN_BOX)
    while pos >= 0 and len(regions) < MAX_BOXES:
        begin = pos + len(BEGIN_BOX)
        pos = text.find(BEGIN_BOX, begin)
        limit = pos if pos >= 0 else len(text)
        close = text.find(END_BOX, begin, limit)
        if close < 0 and pos < 0:
            memory = MARKER.search(text, begin)
            limit = memory.start() if memory else len(text)
        regions.append((begin, close if close >= 0 else limit))
    return regions


def _in_box(text: str, begin: int, close: int, budget: Budget) -> Found | None:
    """The call in one box; a call the box cut short (no ')') is closed at the box's end."""
    bare = _BARE_BOX.fullmatch(text, begin, close)
    if bare:
        return Found(Call(name=bare.group(1)), begin, close)
    if close == len(text) or text.startswith((END_BOX, BEGIN_BOX), close):
        return _in_region(text, begin, close, False, budget)
    head = text[:close]  # an unclosed box, ended where Memory starts
    budget.kept.append(head)
    try:
        return _in_region(head, begin, close, False, budget)
    except ParseError:
        patched = head.rstrip() + ")"
        budget.kept.append(patched)
        found = _in_region(patched, begin, len(patched), False, budget)
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


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    match = None
    for match in pattern.finditer(text):
        pass
    return match


def _before_memory(text: str) -> int:
    """Where the last Memory section starts: its JSON must not pass for the action."""
    marker = _last(MARKER, text)
    return marker.start() if marker else len(text)


def find_action(text: str, budget: Budget | None = None, bare: bool = False) -> Found | None:
    """The reply's action, or None if there is no candidate at all.

    ``bare``: also take a terminal written without a call (DONE, WAIT, FAIL)
    outside a box; only for the visible answer, never for thinking text.
    """
    budget = budget if budget is not None else Budget()
    error: ParseError | None = None
    for begin, close in _boxes(text):
        try:
            found = _in_box(text, begin, close, budget)
        except ParseError as exc:
            error = error or exc
            continue
        if found is not None:
            return found
    label = _last(_ACTION_LABEL, text)
    try:
        if label is not None:
            found = _in_region(text, label.end(), len(text), False, budget)
            if found is not None:
                return found
        found = _in_region(text, 0, _before_memory(text), True, budget)
        if found is None:
            found = _in_region(text, 0, len(text), True, budget)
    except ParseError as exc:
        raise error or exc from None
    if found is None and bare and BEGIN_BOX not in text:
        found = _bare(text)
    if found is None and error is not None:
        raise error
    return found
