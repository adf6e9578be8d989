"""GLM-4.5V's desktop calls (``left_click(start_box='[x,y]')`` ...) -> typed actions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from deskpilot.actions.coords import centre, to_pixels
from deskpilot.actions.models import (
    Action,
    Click,
    Done,
    DoubleClick,
    Drag,
    Fail,
    AskUser,
    Hover,
    Key,
    Scroll,
    TripleClick,
    Type,
    Wait,
)
from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.keynames import parse_keys
from deskpilot.actions.parsing.points import coordinate_numbers
from deskpilot.actions.parsing.scanner import Call

# Canonical call name -> its positional parameter order (the official signatures).
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "left_click": ("start_box", "element_info"),
    "right_click": ("start_box", "element_info"),
    "middle_click": ("start_box", "element_info"),
    "hover": ("start_box", "element_info"),
    "left_double_click": ("start_box", "element_info"),
    "left_triple_click": ("start_box", "element_info"),
    "left_drag": ("start_box", "end_box", "element_info"),
    "key": ("keys",),
    "type": ("content",),
    "scroll": ("start_box", "direction", "step", "element_info"),
    "wait": (),
    "done": ("answer",),
    "fail": ("reason",),
    "call_user": ("question",),
}
_ALIASES = {
    "click": "left_click", "double_click": "left_double_click", "drag": "left_drag",
    "triple_click": "left_triple_click",
    "hotkey": "key", "press": "key",
    "ask_user": "call_user",
}
_KEYWORDS = {
    "start_point": "start_box", "point": "start_box", "box": "start_box", "coordinate": "start_box",
    "end_point": "end_box", "key": "keys", "text": "content", "steps": "step", "amount": "step",
}
CALL_NAMES: frozenset[str] = frozenset(_SIGNATURES) | frozenset(_ALIASES)
ACTION_LIST = ("left_click, right_click, middle_click, hover, left_double_click, left_triple_click, left_drag, key, "
               "type, scroll, WAIT, DONE, FAIL")  # CALL_USER is accepted too, though no built-in prompt offers it
_POINTER = {"left_click": "click", "right_click": "click", "middle_click": "click", "hover": "hover",
            "left_double_click": "double", "left_triple_click": "triple"}


@dataclass
class Mapped:
    """An action in pixels plus what the model said in thousandths."""

    action: Action
    model_points: list[tuple[float, float]] = field(default_factory=list)
    element_info: str | None = None


def canonical_name(name: str) -> str | None:
    lowered = name.lower()
    lowered = _ALIASES.get(lowered, lowered)
    return lowered if lowered in _SIGNATURES else None


def _arguments(call: Call, name: str) -> dict[str, Any]:
    order = _SIGNATURES[name]
    if len(call.args) > max(len(order), 1):
        raise ParseError(f"{call.name}() got too many arguments")
    named = dict(zip(order, call.args))
    for key, value in call.kwargs.items():
        key = key.lower()
        if key not in order:
            key = _KEYWORDS.get(key, key)
        if key not in order and name in ("done", "fail", "call_user") and order[0] not in named:
            key = order[0]  # DONE(text='...'), FAIL(message='...')
        named.setdefault(key, value)
    return named


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise ParseError(f"the {what} must be a quoted string")
    return str(value)


def _point(named: dict[str, Any], key: str) -> tuple[float, float]:
    if named.get(key) is None:
        raise ParseError(f"the {key} is missing: give {key}='[x,y]' with numbers from 0 to 999")
    return centre(coordinate_numbers(named[key], key), key)


def _step(value: Any) -> int:
    if value is None:
        return 5
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ParseError("the step must be a whole number from 1 to 100") from None
    if not number.is_integer() or not 1 <= number <= 100:
        raise ParseError("the step must be a whole number from 1 to 100")
    return int(number)


def _direction(value: Any) -> str:
    direction = _text(value, "direction").strip().lower()
    if direction not in ("up", "down", "left", "right"):
        raise ParseError("the direction must be 'up' or 'down'")
    return direction


MAX_TYPED = 10_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def typed_text(text: str) -> str:
    """Text for Type, checked: bounded, and only characters that can be typed."""
    if len(text) > MAX_TYPED:
        raise ParseError(f"the text to type is longer than {MAX_TYPED} characters")
    bad = _SURROGATE.search(text)
    if bad:
        raise ParseError(
            f"the text to type has an invalid character (a lone UTF-16 surrogate, U+{ord(bad.group()):04X}) "
            f"at position {bad.start()}: write the character itself")
    return text


def pointer_action(kind: str, x: int, y: int, button: str = "left", modifiers: list[str] | None = None) -> Action:
    """A click, double/triple click or hover at a pixel (shared by the desktop and mobile forms)."""
    mods = modifiers or []
    if kind == "hover":
        return Hover(x=x, y=y, modifiers=mods)
    if kind == "double":
        return DoubleClick(x=x, y=y, modifiers=mods)
    if kind == "triple":
        return TripleClick(x=x, y=y, modifiers=mods)
    return Click(x=x, y=y, button=button, modifiers=mods)


def hold_keys(value: Any) -> list[str]:
    """The newer GLM-V ``hold_keys='ctrl+shift'``: keys held during a pointer action ('' / 'None': none)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return []
    keys = parse_keys(value)
    if len(keys) > 4:
        raise ParseError("hold_keys holds at most 4 keys")
    return list(dict.fromkeys(keys))


def map_call(call: Call, width: int, height: int) -> Mapped:
    """Turn a scanned call into a pixel action; a ParseError names what is wrong."""
    name = canonical_name(call.name)
    if name is None:
        raise ParseError(f"unknown action {call.name!r}; use one of: {ACTION_LIST}")
    named = _arguments(call, name)
    info = named.get("element_info", named.get("start_element_info"))  # the newer drag names both ends
    info = str(info) if isinstance(info, (str, int, float)) and not isinstance(info, bool) else None
    mods = hold_keys(named.get("hold_keys")) if name in _POINTER or name in ("left_drag", "scroll") else []
    if name in _POINTER:
        point = _point(named, "start_box")
        action = pointer_action(_POINTER[name], *to_pixels(point, width, height), button=name.split("_")[0],
                                modifiers=mods)
        return Mapped(action, [point], info)
    if name == "left_drag":
        start, end = _point(named, "start_box"), _point(named, "end_box")
        (x, y), (to_x, to_y) = to_pixels(start, width, height), to_pixels(end, width, height)
        return Mapped(Drag(x=x, y=y, to_x=to_x, to_y=to_y, modifiers=mods), [start, end], info)
    if name == "scroll":
        point = _point(named, "start_box")
        x, y = to_pixels(point, width, height)
        scroll = Scroll(x=x, y=y, direction=_direction(named.get("direction")), amount=_step(named.get("step")),
                        modifiers=mods)
        return Mapped(scroll, [point], info)
    return Mapped(_keyboard_or_end(name, named), [], info)


def _keyboard_or_end(name: str, named: dict[str, Any]) -> Action:
    if name == "key":
        return Key(keys=parse_keys(named.get("keys")))
    if name == "type":
        if named.get("content") is None:
            raise ParseError("type() needs content='the text to type'")
        return Type(text=typed_text(_text(named["content"], "content")))
    if name == "wait":
        return Wait(seconds=5)
    if name == "call_user":
        return AskUser(question=_text(named.get("question"), "question"))
    if name == "done":
        answer = named.get("answer")
        return Done(answer=None if answer is None else _text(answer, "answer"))
    return Fail(reason=_text(named.get("reason"), "reason"))
