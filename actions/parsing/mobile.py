"""GLM's mobile JSON actions ({"action_type": "click", "box_2d": [[...]]}) on a desktop.

What has a desktop equivalent is mapped; the rest (open_app, navigate_home,
long_press) is rejected with a hint so the model can answer with a desktop call.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from deskpilot.actions.coords import centre, to_pixels
from deskpilot.actions.models import Action, Done, Fail, InputText, Key, Scroll, Type, Wait
from deskpilot.actions.parsing.desktop import ACTION_LIST, Mapped, pointer_action, typed_text
from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.keynames import parse_keys
from deskpilot.actions.parsing.points import coordinate_numbers

_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
_CLICKS = {"click": "left", "tap": "left", "left_click": "left", "right_click": "right", "middle_click": "middle"}
_TEXT_KEYS = ("text", "content", "answer", "value")


def action_name(obj: dict[str, Any]) -> str:
    for key in ("action_type", "action", "type", "name"):
        if isinstance(obj.get(key), str):
            return obj[key].strip().lower()
    raise ParseError('the JSON action needs "action_type", e.g. {"action_type": "click", "box_2d": [[x1,y1,x2,y2]]}')


@overload
def _point(obj: dict[str, Any], required: Literal[True]) -> tuple[float, float]: ...
@overload
def _point(obj: dict[str, Any], required: bool) -> tuple[float, float] | None: ...
def _point(obj: dict[str, Any], required: bool) -> tuple[float, float] | None:
    for key in ("box_2d", "start_box", "point", "coordinate", "box"):
        value = obj.get(key)
        if value not in (None, [], ""):
            return centre(coordinate_numbers(value, "box_2d"), "box_2d")
    if required:
        raise ParseError("the box_2d is missing: give [[x1,y1,x2,y2]] with numbers from 0 to 999")
    return None


def _text(obj: dict[str, Any]) -> str | None:
    for key in _TEXT_KEYS:
        if obj.get(key) is not None and not isinstance(obj[key], (list, dict)):
            return str(obj[key])
    return None


def map_object(obj: dict[str, Any], width: int, height: int) -> Mapped:
    """Turn a mobile-style JSON action into a pixel action."""
    name = action_name(obj)
    if name in _CLICKS or name in ("double_click", "hover"):
        point = _point(obj, required=True)
        kind = {"hover": "hover", "double_click": "double"}.get(name, "click")
        action = pointer_action(kind, *to_pixels(point, width, height), button=_CLICKS.get(name, "left"))
        return Mapped(action, [point])
    if name in ("swipe", "scroll"):
        return _scroll(obj, name, width, height)
    if name == "input_text" and _point(obj, required=False) is not None:
        return _input_text(obj, width, height)
    return Mapped(_other(name, obj))


def _input_text(obj: dict[str, Any], width: int, height: int) -> Mapped:
    """The official semantics: click the field, clear it when override is true, type, press Enter."""
    point = _point(obj, required=True)
    assert point is not None  # required=True raised otherwise
    text = _text(obj)
    if text is None:
        raise ParseError('input_text needs "text"')
    text = typed_text(text)  # bounded, and no lone surrogates
    override = obj.get("override", False)
    if isinstance(override, str):
        override = override.strip().lower() in ("true", "1", "yes")
    x, y = to_pixels(point, width, height)
    return Mapped(InputText(x=x, y=y, text=text, override=bool(override)), [point])


def _scroll(obj: dict[str, Any], name: str, width: int, height: int) -> Mapped:
    direction = str(obj.get("direction", "")).strip().lower()
    if direction not in _OPPOSITE:
        raise ParseError("the direction must be 'up', 'down', 'left' or 'right'")
    if name == "swipe":  # the finger moves up, so the content scrolls down
        direction = _OPPOSITE[direction]
    point = _point(obj, required=False) or (500.0, 500.0)
    x, y = to_pixels(point, width, height)
    return Mapped(Scroll(x=x, y=y, direction=direction), [point])


def _other(name: str, obj: dict[str, Any]) -> Action:
    if name in ("type", "input_text", "input", "typing"):
        text = _text(obj)
        if text is None:
            raise ParseError('the typing action needs "text"')
        return Type(text=typed_text(text))
    if name in ("key", "hotkey", "press"):
        return Key(keys=parse_keys(obj.get("keys", obj.get("key", obj.get("text")))))
    if name == "keyboard_enter":
        return Key(keys=["enter"])
    if name == "navigate_back":
        return Key(keys=["alt", "left"])
    if name == "wait":
        return Wait(seconds=5)
    if name == "status":
        status = str(obj.get("goal_status", "")).strip().lower()
        if status == "complete":
            return Done()
        if status == "infeasible":
            return Fail()
        raise ParseError("the goal_status must be 'complete' or 'infeasible'")
    if name in ("answer", "done", "finish", "finished"):
        return Done(answer=_text(obj))
    if name == "fail":
        return Fail(reason=_text(obj) or "")
    raise ParseError(f"the action {name[:40]!r} has no desktop equivalent; use one of: {ACTION_LIST}")
