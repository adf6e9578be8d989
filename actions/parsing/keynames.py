"""Key combos as the model writes them ('ctrl+c', 'Control + Shift + t', ['alt','tab'])."""

from __future__ import annotations

from typing import Any

from deskpilot.actions.keys import normalize_key
from deskpilot.actions.parsing.errors import ParseError

MAX_KEYS = 8


def _split(combo: str) -> list[str]:
    combo = combo.strip()
    if "+" not in combo:
        try:
            return [normalize_key(combo)]
        except ValueError:
            return combo.split()  # 'ctrl shift t'
    parts = [part.strip() for part in combo.split("+")]
    out: list[str] = []
    for index, part in enumerate(parts):
        if part:
            out.append(part)
        elif index > 0 and parts[index - 1] == "" and (not out or out[-1] != "+"):
            out.append("+")  # 'ctrl++' presses the plus key
    return out


def parse_keys(value: Any) -> list[str]:
    """Canonical key names of a combo; a ParseError names an unknown key."""
    if isinstance(value, str):
        names = _split(value)
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        names = [n for v in value for n in _split(v)]
    else:
        raise ParseError("key() needs keys='ctrl+c' (key names joined by '+')")
    if not names:
        raise ParseError("key() needs keys='ctrl+c' (key names joined by '+')")
    if len(names) > MAX_KEYS:
        raise ParseError(f"key() presses at most {MAX_KEYS} keys at once")
    out = []
    for name in names:
        try:
            out.append(normalize_key(name))
        except ValueError:
            raise ParseError(f"unknown key name {name[:30]!r}; use names like ctrl, shift, enter, esc, f5, a") from None
    return out
