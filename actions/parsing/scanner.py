"""A small scanner for the call syntax the model writes: ``name(arg, key=value)``.

Model text is never evaluated: this reads only literals (strings, numbers,
lists, tuples, dicts, ``<bbox>``/``<point>`` tags, bare words) with bounded
depth and size, so any input finishes quickly with a value or a ParseError.

Linear by construction: one scan reads at most ``MAX_ACTION_CHARS`` characters
after its start and at most ``MAX_VALUES`` literals, and skips whitespace and
string bodies with regular expressions (C speed), so the callers can bound a
whole reply's work by bounding the number of scans (see ``locate``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deskpilot.actions.parsing.errors import ParseError

MAX_DEPTH = 6
MAX_ITEMS = 64
MAX_VALUES = 512  # literals per action: a real call has a handful
MAX_ACTION_CHARS = 24_000  # a type() of 10000 characters fits even with escapes
MAX_DIGITS = 40
_WS = re.compile(r"\s*")
_BLANKS = re.compile(r"[ \t]*")
_STRING_BODY = {q: re.compile(rf"[^\\{q}]*") for q in ("'", '"')}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[-+]?(?:\d{1,40}(?:\.\d{0,40})?|\.\d{1,40})(?:[eE][-+]?\d{1,4})?(?![\w.])")
_LONG_NUMBER = re.compile(rf"\d{{{MAX_DIGITS + 1}}}")
_TAG = re.compile(r"<(bbox|point)>", re.IGNORECASE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0", "/": "/"}
_CLOSERS = set(",)]}>:")
_OPEN = {"[": "]", "(": ")", "<": ">"}
_WORDS = {"true": True, "false": False, "none": None, "null": None}


def _skip(pattern: re.Pattern[str], text: str, pos: int, end: int) -> int:
    """Where a run of ``pattern`` (which may match empty) starting at ``pos`` ends."""
    match = pattern.match(text, pos, end)
    return match.end() if match else pos


class Bare(str):
    """An unquoted word, e.g. ``direction=down``."""


class Coords(str):
    """The inside of a ``<bbox>...</bbox>`` or ``<point>...</point>`` tag."""


@dataclass
class Call:
    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    start: int = 0
    end: int = 0


class Scanner:
    """Reads literals from ``text`` starting at ``pos``; ``pos`` ends after what was read."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos
        self.end = min(len(text), pos + MAX_ACTION_CHARS)  # nothing at or after ``end`` is read
        self.values = 0

    def _ws(self) -> None:
        self.pos = _skip(_WS, self.text, self.pos, self.end)

    def _peek(self) -> str:
        self._ws()
        return self.text[self.pos] if self.pos < self.end else ""

    def _unfinished(self, message: str) -> ParseError:
        """The error for running out of text: the real end, or the size limit."""
        if self.end < len(self.text):
            return ParseError(f"{message} within {MAX_ACTION_CHARS} characters")
        return ParseError(message)

    def call(self) -> Call:
        """Read ``name(...)`` at the current position."""
        start = self.pos
        match = _NAME.match(self.text, self.pos, self.end)
        if not match:
            raise ParseError("the action must be a call like left_click(start_box='[x,y]')")
        self.pos = match.end()
        if self._peek() != "(":
            raise ParseError(f"the action {match.group()} must be followed by '('")
        self.pos += 1
        result = Call(name=match.group(), start=start)
        while True:
            char = self._peek()
            if char == ")":
                self.pos += 1
                result.end = self.pos
                return result
            if not char:
                raise self._unfinished(f"the call {result.name}( is not closed with ')'")
            if len(result.args) + len(result.kwargs) >= MAX_ITEMS:
                raise ParseError(f"the call {result.name}() has too many arguments")
            key = self._keyword()
            value = self.value(1)
            if key is None:
                result.args.append(value)
            else:
                result.kwargs[key] = value
            char = self._peek()
            if char == ",":
                self.pos += 1
            elif char and char != ")":
                raise ParseError(f"the arguments of {result.name}() must be separated by commas")

    def _keyword(self) -> str | None:
        match = _NAME.match(self.text, self.pos, self.end)
        if not match:
            return None
        after = _skip(_WS, self.text, match.end(), self.end)
        if self.text.startswith("=", after, self.end) and not self.text.startswith("==", after, self.end):
            self.pos = after + 1
            return match.group()
        return None

    def value(self, depth: int = 0) -> Any:
        """Read one literal."""
        if depth > MAX_DEPTH:
            raise ParseError("the action is nested too deeply")
        self.values += 1
        if self.values > MAX_VALUES:
            raise ParseError(f"the action has more than {MAX_VALUES} values")
        char = self._peek()
        if char in ("'", '"'):
            return self._string(char)
        if char == "<":
            tag = _TAG.match(self.text, self.pos, self.end)
            if tag:
                return self._tag(tag)
        if char in _OPEN:
            return self._sequence(_OPEN[char], depth)
        if char == "{":
            return self._dict(depth)
        number = _NUMBER.match(self.text, self.pos, self.end)
        if number:
            self.pos = number.end()
            token = number.group()
            return float(token) if any(c in token for c in ".eE") else int(token)
        if char.isdigit() and _LONG_NUMBER.match(self.text, self.pos, self.end):
            raise ParseError(f"a number in the action has more than {MAX_DIGITS} digits")
        word = _NAME.match(self.text, self.pos, self.end)
        if word:
            self.pos = word.end()
            lowered = word.group().lower()
            return _WORDS[lowered] if lowered in _WORDS else Bare(word.group())
        if not char:
            raise self._unfinished("the action call ends too early")
        raise ParseError(f"unexpected character {char!r} in the action call")

    def _string(self, quote: str) -> str:
        text, end, body = self.text, self.end, _STRING_BODY[quote]
        pos = self.pos + 1
        out: list[str] = []
        while pos < end:
            run = _skip(body, text, pos, end)  # plain characters up to a quote or backslash
            out.append(text[pos:run])
            pos = run
            if pos >= end:
                break
            if text[pos] == "\\" and pos + 1 < end:
                pos = self._escape(pos, out)
                continue
            if text[pos] == quote and self._closes(pos + 1):
                self.pos = pos + 1
                return "".join(out)
            out.append(text[pos])
            pos += 1
        raise self._unfinished("a quoted string in the action is not closed")

    def _closes(self, pos: int) -> bool:
        """A quote ends the string only before a delimiter: tolerates 'don't'."""
        text, end = self.text, self.end
        pos = _skip(_BLANKS, text, pos, end)
        if pos >= end:
            return end == len(text)
        return text[pos] in _CLOSERS or text[pos] in "\r\n"

    def _escape(self, pos: int, out: list[str]) -> int:
        code = self.text[pos + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            return pos + 2
        if code in "uxU":
            width = {"u": 4, "x": 2, "U": 8}[code]
            digits = self.text[pos + 2 : pos + 2 + width]
            if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits) and int(digits, 16) <= 0x10FFFF:
                point = int(digits, 16)
                after = pos + 2 + width
                low = self.text[after : after + 6]
                if 0xD800 <= point < 0xDC00 and low[:2] == "\\u" and len(low) == 6 and all(
                        c in "0123456789abcdefABCDEF" for c in low[2:]) and 0xDC00 <= int(low[2:], 16) < 0xE000:
                    point = 0x10000 + ((point - 0xD800) << 10) + (int(low[2:], 16) - 0xDC00)  # JSON surrogate pair
                    after += 6
                if 0xD800 <= point < 0xE000:
                    point = 0xFFFD  # a lone surrogate cannot be typed
                out.append(chr(point))
                return after
        out.append("\\" + code)
        return pos + 2

    def _tag(self, tag: re.Match) -> Coords:
        closing = f"</{tag.group(1).lower()}>"
        found = self.text[tag.end() : tag.end() + 200].lower().find(closing)
        if found < 0:
            raise ParseError(f"the <{tag.group(1)}> tag is not closed")
        end = tag.end() + found
        self.pos = end + len(closing)
        return Coords(self.text[tag.end() : end])

    def _sequence(self, closer: str, depth: int) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while True:
            char = self._peek()
            if char == closer:
                self.pos += 1
                return items
            if not char:
                raise self._unfinished(f"a list in the action is not closed with {closer!r}")
            if len(items) >= MAX_ITEMS:
                raise ParseError("a list in the action is too long")
            items.append(self.value(depth + 1))
            char = self._peek()
            if char == ",":
                self.pos += 1
            elif char and char != closer:
                raise ParseError(f"a list in the action must be closed with {closer!r}")

    def _dict(self, depth: int) -> dict[str, Any]:
        self.pos += 1
        items: dict[str, Any] = {}
        while True:
            char = self._peek()
            if char == "}":
                self.pos += 1
                return items
            if not char:
                raise self._unfinished("a JSON object in the action is not closed with '}'")
            if len(items) >= MAX_ITEMS:
                raise ParseError("a JSON object in the action is too long")
            key = self.value(depth + 1)
            if self._peek() != ":":
                raise ParseError("a JSON object in the action needs 'key: value' pairs")
            self.pos += 1
            items[str(key)] = self.value(depth + 1)
            char = self._peek()
            if char == ",":
                self.pos += 1
            elif char and char != "}":
                raise ParseError("a JSON object in the action must be closed with '}'")


def read_call(text: str, pos: int) -> Call:
    """Read the call that starts at ``pos`` (its name's first character)."""
    return Scanner(text, pos).call()


def read_value(text: str, pos: int) -> tuple[Any, int]:
    """Read one literal at ``pos``; return it and the position after it."""
    scanner = Scanner(text, pos)
    value = scanner.value()
    return value, scanner.pos
