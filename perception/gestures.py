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
click; a left press released more than ``DOUBLE_CLICK_PX`` away is a drag
(seen only where releases are fed); wheel presses (buttons 4-7) at one place
become one ``scroll`` of that many clicks.
"""

from __future__ import annotations

from typing import Literal, Sequence

from pydantic import BaseModel

from deskpilot.actions.models import Action, Click, DoubleClick, Drag, Key, Scroll, Type
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
WHEEL = {4: "up", 5: "down", 6: "left", 7: "right"}
MAX_TYPE = 10_000  # characters in one Type action (longer typing becomes several)


class Gesture(BaseModel):
    """One thing the person did: a click (``double`` marks the previous click a double one), text, or a key chord."""

    kind: Literal["click", "double", "drag", "scroll", "type", "key"]
    text: str = ""  # type: the characters; key: the chord as the executor spells it ("ctrl+s"); scroll: direction
    x: int = 0
    y: int = 0
    button: str = "left"
    to: tuple[int, int] = (0, 0)  # drag: where it was released
    amount: int = 1  # scroll: wheel clicks
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
        self._pressed: InputEvent | None = None  # the left press not yet released

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
        if event.kind == "button_press" and event.detail in WHEEL:
            self._last_click = None
            return [*self.flush(), Gesture(kind="scroll", text=WHEEL[event.detail], x=event.x, y=event.y, event=event)]
        if event.kind == "button_release" and event.detail == 1 and self._pressed is not None:
            pressed, self._pressed = self._pressed, None
            if max(abs(event.x - pressed.x), abs(event.y - pressed.y)) > DOUBLE_CLICK_PX:
                self._last_click = None
                return [Gesture(kind="drag", x=pressed.x, y=pressed.y, to=(event.x, event.y), event=pressed)]
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
        self._pressed = event if event.detail == 1 else None
        previous = self._last_click
        if (previous is not None and event.detail == 1 and previous.detail == 1 and not out
                and event.time - previous.time <= DOUBLE_CLICK_S
                and abs(event.x - previous.x) <= DOUBLE_CLICK_PX and abs(event.y - previous.y) <= DOUBLE_CLICK_PX):
            self._last_click = None
            return [Gesture(kind="double", x=previous.x, y=previous.y, event=event)]
        self._last_click = event
        return [*out, Gesture(kind="click", x=event.x, y=event.y, button=BUTTONS[event.detail], event=event)]


def gestures(events: Sequence[InputEvent], *, enter_as_key: bool = False) -> list[Gesture]:
    """All gestures in ``events``: double clicks and drags folded into their click, wheel clicks summed."""
    reader, out = GestureReader(enter_as_key=enter_as_key), list[Gesture]()
    for event in events:
        for g in reader.feed(event):
            last = out[-1] if out else None
            if g.kind in ("double", "drag") and last is not None and last.kind == "click" and (last.x, last.y) == (g.x, g.y):
                out[-1] = last.model_copy(update={"kind": g.kind, "to": g.to})
            elif (g.kind == "scroll" and last is not None and last.kind == "scroll" and last.text == g.text
                  and max(abs(last.x - g.x), abs(last.y - g.y)) <= DOUBLE_CLICK_PX and last.amount < 100):
                out[-1] = last.model_copy(update={"amount": last.amount + 1})
            elif g.kind == "type" and len(g.text) > MAX_TYPE:
                out += [g.model_copy(update={"text": g.text[i:i + MAX_TYPE]}) for i in range(0, len(g.text), MAX_TYPE)]
            else:
                out.append(g)
    return out + reader.flush()


def action_of(g: Gesture) -> Action:
    """The typed action that does ``g`` again (pixels, as the person clicked); ValueError when none can."""
    if g.kind == "click":
        return Click(x=g.x, y=g.y, button=g.button)  # type: ignore[arg-type]
    if g.kind == "double":
        return DoubleClick(x=g.x, y=g.y)
    if g.kind == "drag":
        return Drag(x=g.x, y=g.y, to_x=g.to[0], to_y=g.to[1])
    if g.kind == "scroll":
        return Scroll(x=g.x, y=g.y, direction=g.text, amount=g.amount)  # type: ignore[arg-type]
    if g.kind == "type":
        return Type(text=g.text)
    return Key(keys=g.text)  # type: ignore[arg-type]  # ValidationError (a ValueError) for a key it cannot press


def actions_of(events: Sequence[InputEvent]) -> tuple[list[Action], list[str]]:
    """A person's events as the actions that redo them (Enter as its own key, so terminals run lines),
    and what could not become one (a key the executor has no name for, e.g. a media key)."""
    done, skipped = list[Action](), list[str]()
    for g in gestures(events, enter_as_key=True):
        try:
            done.append(action_of(g))
        except ValueError:
            skipped.append(f"{g.kind} {g.text}".strip())
    return done, skipped
