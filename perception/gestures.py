"""What a person's X input events mean: clicks, typed text and key chords (pure; no display needed).

Both readers of a person's input use this: ``deskpilot record`` (which makes
workflow steps of the gestures) and the agent's take-over turn (which stores
them as typed actions, so replay and the action cache can do them again).

Rules: runs of printable keys (Shift included, BackSpace editing the run)
become one ``type``; Enter ends a run as its own ``key`` gesture when
``enter_as_key`` (actions), or stays in the text as a newline (workflow
``type`` steps); keys held with Ctrl, Alt or Super, and special keys, become
``key`` chords (``ctrl+s``); a second left press within ``DOUBLE_CLICK_S`` and
``DOUBLE_CLICK_PX`` of the first, with nothing in between, makes it a double
click.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from pydantic import BaseModel

from deskpilot.actions.models import Action, Click, DoubleClick, Key, Type
from deskpilot.perception.inputs import InputEvent

SHIFT, CONTROL, ALT, SUPER = 1, 4, 8, 64
DOUBLE_CLICK_S, DOUBLE_CLICK_PX = 0.4, 4
MODIFIER_KEYS = {"Shift_L", "Shift_R", "Control_L", "Control_R", "Alt_L", "Alt_R", "Super_L", "Super_R",
                 "Meta_L", "Meta_R", "ISO_Level3_Shift", "Caps_Lock", "Num_Lock", "Hyper_L", "Hyper_R"}
_KEY_NAMES = {"Return": "enter", "KP_Enter": "enter", "Escape": "escape", "Tab": "tab", "ISO_Left_Tab": "tab",
              "BackSpace": "backspace", "Delete": "delete", "Insert": "insert", "Home": "home", "End": "end",
              "Page_Up": "pageup", "Prior": "pageup", "Page_Down": "pagedown", "Next": "pagedown",
              "Up": "up", "Down": "down", "Left": "left", "Right": "right", "space": "space"}
BUTTONS = {1: "left", 2: "middle", 3: "right"}


class Gesture(BaseModel):
    """One thing the person did: a click (``double`` marks the previous click a double one), text, or a key chord."""

    kind: Literal["click", "double", "type", "key"]
    text: str = ""  # type: the characters; key: the chord as the executor spells it ("ctrl+s")
    x: int = 0
    y: int = 0
    button: str = "left"
    event: InputEvent | None = None  # the press it came from (clicks, keys)


def key_name(keysym: str) -> str:
    """A keysym name as the executor's key names spell it ('Return' -> 'enter', 'F5' -> 'f5', 'a' -> 'a')."""
    return _KEY_NAMES.get(keysym, keysym.lower())


class GestureReader:
    """Feeds on press events in order; ``feed`` and ``flush`` return the gestures completed so far."""

    def __init__(self, *, enter_as_key: bool = False) -> None:
        self.enter_as_key = enter_as_key
        self._buffer: list[str] = []
        self._last_click: InputEvent | None = None  # a click that nothing has followed yet

    def flush(self) -> list[Gesture]:
        """The text typed so far as one gesture (before a click, a chord, a new window, the end)."""
        if not self._buffer:
            return []
        text, self._buffer = "".join(self._buffer), []
        self._last_click = None
        return [Gesture(kind="type", text=text)]

    def feed(self, event: InputEvent) -> list[Gesture]:
        if event.kind == "key_press":
            return self._key(event)
        if event.kind == "button_press" and event.detail in BUTTONS:
            return self._click(event)
        return []

    def _key(self, event: InputEvent) -> list[Gesture]:
        if event.keysym in MODIFIER_KEYS:
            return []
        chord = [name for mask, name in ((CONTROL, "ctrl"), (ALT, "alt"), (SUPER, "super")) if event.state & mask]
        enter = event.keysym in ("Return", "KP_Enter")
        if not chord and (event.char or (enter and not self.enter_as_key)):
            self._buffer.append(event.char or "\n")
            self._last_click = None
            return []
        if not chord and event.keysym == "BackSpace" and self._buffer:
            self._buffer.pop()
            return []
        out = self.flush()
        self._last_click = None
        if chord and event.state & SHIFT:
            chord.append("shift")
        out.append(Gesture(kind="key", text="+".join([*chord, key_name(event.base_key or event.keysym)]), event=event))
        return out

    def _click(self, event: InputEvent) -> list[Gesture]:
        out = self.flush()
        previous = self._last_click
        if (previous is not None and event.detail == 1 and previous.detail == 1 and not out
                and event.time - previous.time <= DOUBLE_CLICK_S
                and abs(event.x - previous.x) <= DOUBLE_CLICK_PX and abs(event.y - previous.y) <= DOUBLE_CLICK_PX):
            self._last_click = None
            return [Gesture(kind="double", x=previous.x, y=previous.y, event=event)]
        self._last_click = event
        return [*out, Gesture(kind="click", x=event.x, y=event.y, button=BUTTONS[event.detail], event=event)]


def gestures(events: Sequence[InputEvent], *, enter_as_key: bool = False) -> list[Gesture]:
    """All gestures in ``events``, with the double clicks already folded into their first click."""
    reader, out = GestureReader(enter_as_key=enter_as_key), list[Gesture]()
    for event in events:
        for gesture in reader.feed(event):
            if gesture.kind == "double" and out and out[-1].kind == "click":
                out[-1] = out[-1].model_copy(update={"kind": "double"})
            else:
                out.append(gesture)
    return out + reader.flush()


def as_actions(found: Sequence[Gesture]) -> list[Action]:
    """The typed actions that do ``found`` again through the executor (pixels, as the person clicked)."""
    out: list[Action] = []
    for g in found:
        if g.kind == "click":
            out.append(Click(x=g.x, y=g.y, button=g.button))  # type: ignore[arg-type]
        elif g.kind == "double":
            out.append(DoubleClick(x=g.x, y=g.y))
        elif g.kind == "type":
            out.append(Type(text=g.text))
        else:
            out.append(Key(keys=g.text))  # type: ignore[arg-type]
    return out


def actions_of(events: Sequence[InputEvent]) -> list[Action]:
    """A person's press events as the actions that redo them (Enter as its own key, so terminals run lines)."""
    return as_actions(gestures(events, enter_as_key=True))


def dump(actions: Sequence[Action]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in actions]
