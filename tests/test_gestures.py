"""perception/gestures.py: a person's X events as gestures and actions (the rules replay and the cache rely on).

The events are built as the RECORD reader builds them (kind, detail, root point,
modifier state, keysym, typed character); the X path itself is covered by
tests/test_human_turns.py and tests/test_takeover.py.
"""

from __future__ import annotations

from deskpilot.actions.models import Click, DoubleClick, Drag, Key, Scroll, Type
from deskpilot.perception.gestures import MAX_TYPE, actions_of, gestures
from deskpilot.perception.inputs import InputEvent


def key(name: str, char: str = "", state: int = 0, t: float = 0.0) -> InputEvent:
    return InputEvent(kind="key_press", detail=0, x=0, y=0, state=state, time=t, keysym=name, char=char,
                      base_key=name.lower() if len(name) == 1 else name)


def press(x: int, y: int, button: int = 1, t: float = 0.0) -> InputEvent:
    return InputEvent(kind="button_press", detail=button, x=x, y=y, state=0, time=t)


def release(x: int, y: int, button: int = 1, t: float = 0.0) -> InputEvent:
    return InputEvent(kind="button_release", detail=button, x=x, y=y, state=0, time=t)


def typed(text: str) -> list[InputEvent]:
    return [key(c, c) for c in text]


def test_clicks_typing_chords_and_enter_become_actions():
    events = [press(10, 20), release(10, 20), *typed("ls -l"), key("BackSpace"), *typed("a"), key("Return"),
              key("s", "s", state=4)]
    done, skipped = actions_of(events)
    assert done == [Click(x=10, y=20), Type(text="ls -a"), Key(keys=["enter"]), Key(keys=["ctrl", "s"])]
    assert skipped == []


def test_double_click_drag_and_wheel():
    events = [press(5, 5, t=0.0), release(5, 5, t=0.05), press(6, 5, t=0.2), release(6, 5, t=0.25),
              press(100, 100, t=2.0), release(300, 140, t=2.5),
              press(50, 60, 5, t=3.0), press(50, 60, 5, t=3.1), press(50, 60, 5, t=3.2), press(50, 60, 4, t=3.3)]
    done, _ = actions_of(events)
    assert done == [DoubleClick(x=5, y=5), Drag(x=100, y=100, to_x=300, to_y=140),
                    Scroll(x=50, y=60, direction="down", amount=3), Scroll(x=50, y=60, direction="up", amount=1)]


def test_a_slow_second_click_is_two_clicks_and_a_click_after_typing_is_not_a_double():
    slow, _ = actions_of([press(5, 5, t=0.0), press(5, 5, t=1.0)])
    assert slow == [Click(x=5, y=5), Click(x=5, y=5)]
    between, _ = actions_of([press(5, 5, t=0.0), *typed("x"), press(5, 5, t=0.1)])
    assert between == [Click(x=5, y=5), Type(text="x"), Click(x=5, y=5)]


def test_long_typing_is_split_and_a_key_with_no_name_is_reported_not_dropped_silently():
    done, skipped = actions_of([*typed("a" * (MAX_TYPE + 5)), key("XF86AudioMute")])
    assert [len(a.text) for a in done if isinstance(a, Type)] == [MAX_TYPE, 5]
    assert skipped == ["key xf86audiomute"]


def test_workflow_rules_keep_enter_in_the_text():
    assert [g.text for g in gestures([*typed("hi"), key("Return"), *typed("yo")])] == ["hi\nyo"]
