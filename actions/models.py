"""Typed actions in screen pixels: the only thing the executor accepts.

Model coordinates (thousandths) are mapped to pixels by the dialect before an
action is built, so everything downstream of the parser speaks pixels.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from deskpilot.actions.keys import normalize_key

Pixel = Annotated[int, Field(ge=0)]


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def points(self) -> list[tuple[int, int]]:
        """Pixel points the action touches, in order (empty if none)."""
        return []


def _modifier_list(value: object) -> object:
    """'ctrl+shift' or ['ctrl', 'shift'] -> canonical names; '' and 'none' mean no keys."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else split_combo(value)
    if isinstance(value, list):
        names = [normalize_key(str(v)) for v in value]
        return list(dict.fromkeys(names))
    return value


class _Pointed(_Base):
    x: Pixel
    y: Pixel

    def points(self) -> list[tuple[int, int]]:
        return [(self.x, self.y)]


class _Held(_Pointed):
    """A pointer action performed with keys held down (``hold_keys`` of GLM-V),
    e.g. ctrl+click to add to a selection: keys go down before, up after."""

    modifiers: list[str] = Field(default_factory=list, max_length=4)

    @field_validator("modifiers", mode="before")
    @classmethod
    def _mods(cls, value: object) -> object:
        return _modifier_list(value)


class Click(_Held):
    type: Literal["click"] = "click"
    button: Literal["left", "right", "middle"] = "left"


class DoubleClick(_Held):
    type: Literal["double_click"] = "double_click"


class TripleClick(_Held):
    """Three left clicks in a row: selects a line or paragraph in most toolkits."""

    type: Literal["triple_click"] = "triple_click"


class Hover(_Held):
    type: Literal["hover"] = "hover"


class Drag(_Held):
    """Press at (x, y), move to (to_x, to_y), release."""

    type: Literal["drag"] = "drag"
    to_x: Pixel
    to_y: Pixel

    def points(self) -> list[tuple[int, int]]:
        return [(self.x, self.y), (self.to_x, self.to_y)]


class Scroll(_Held):
    type: Literal["scroll"] = "scroll"
    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int = Field(default=5, ge=1, le=100)


def split_combo(text: str) -> list[str]:
    """'ctrl+c' -> ['ctrl', 'c']; a trailing '+' is the plus key ('ctrl++')."""
    text = text.replace(" ", "")
    plus = text.endswith("+") and (text == "+" or text.endswith("++"))
    body = text[:-1] if plus else text
    parts = [p for p in body.split("+") if p]
    return parts + ["+"] if plus else (parts or [text])


class Key(_Base):
    """A key or a chord, e.g. ``ctrl+shift+t``; names are normalized on input."""

    type: Literal["key"] = "key"
    keys: list[str] = Field(min_length=1, max_length=8)

    @field_validator("keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            value = split_combo(value)
        if isinstance(value, list):
            return [normalize_key(str(v)) for v in value]
        return value

    @property
    def combo(self) -> str:
        return "+".join(self.keys)


class Type(_Base):
    """Type text at the focus (any Unicode); it does not focus or clear a field."""

    type: Literal["type"] = "type"
    text: str = Field(max_length=10_000)


class InputText(_Pointed):
    """The mobile ``input_text``: click the field, clear it if ``override``,
    type ``text``, press Enter (the official semantics)."""

    type: Literal["input_text"] = "input_text"
    text: str = Field(max_length=10_000)
    override: bool = False


class Wait(_Base):
    type: Literal["wait"] = "wait"
    seconds: float = Field(default=5.0, ge=0, le=600)


class Done(_Base):
    type: Literal["done"] = "done"
    answer: str | None = None


class Fail(_Base):
    type: Literal["fail"] = "fail"
    reason: str = ""


class AskUser(_Base):
    """The model asks the person a question (UI-TARS' CALL_USER, GLM-5V's ask-user turn); nothing is sent."""

    type: Literal["ask_user"] = "ask_user"
    question: str = ""


Action = Annotated[
    Union[Click, DoubleClick, TripleClick, Hover, Drag, Scroll, Key, Type, InputText, Wait, Done, Fail, AskUser],
    Field(discriminator="type"),
]

ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)

TERMINAL_TYPES = frozenset({"done", "fail"})


def action_from_json(data: dict | str) -> Action:
    """Validate a stored action (dict or JSON text) back into its typed model."""
    if isinstance(data, str):
        return ACTION_ADAPTER.validate_json(data)
    return ACTION_ADAPTER.validate_python(data)
