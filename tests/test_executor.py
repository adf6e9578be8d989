"""The executor against a real Xvfb + openbox sandbox and the real Tk probe app."""

from __future__ import annotations

import os
import signal
import time

import pytest
from Xlib import X

from deskpilot.actions.errors import ActionError, ExecutorError
from deskpilot.actions.executor import Executor
from deskpilot.actions.models import Click, Done, DoubleClick, Drag, Fail, Hover, Key, Scroll, Type, Wait
from apps import launch_probe
from deskpilot.sandbox import Sandbox, x11

SIZE = (1280, 800)


@pytest.fixture(scope="module")
def sb():
    with Sandbox(size=SIZE, isolation="bwrap", network=False) as box:
        yield box


@pytest.fixture(scope="module")
def probe(sb):
    return launch_probe(sb, title="probe-one")


@pytest.fixture(scope="module")
def ex(sb):
    with Executor.for_sandbox(sb) as executor:
        yield executor


def _is(kind: str, button: int | None = None):
    return lambda e: e["ev"] == kind and (button is None or e.get("button") == button)


def _click_and_check(ex, probe, x, y, button="left"):
    number = {"left": 1, "middle": 2, "right": 3}[button]
    mark = probe.log.mark()
    ex.perform(Click(x=x, y=y, button=button))
    press = probe.log.wait_for(_is("press", number), mark)
    release = probe.log.wait_for(_is("release", number), mark)
    assert (press["x_root"], press["y_root"]) == (x, y)
    assert (release["x_root"], release["y_root"]) == (x, y)
    return press


@pytest.mark.parametrize("widget,dx,dy", [
    ("area", 0, 0), ("area", -1, -1), ("area", 0, -1), ("area", -1, 0), ("area", 123, 77),
    ("e1", 1, 1), ("e2", -2, -2), ("text", -1, 0), ("root", 0, 0), ("root", -1, -1),
])
def test_click_lands_exactly(ex, probe, widget, dx, dy):
    x, y = probe.point(widget, dx, dy)
    press = _click_and_check(ex, probe, x, y)
    if widget != "root":
        assert press["w"] == widget
        assert (press["x"], press["y"]) == (x - probe.widgets[widget][0], y - probe.widgets[widget][1])


@pytest.mark.parametrize("button", ["right", "middle"])
def test_other_buttons(ex, probe, button):
    _click_and_check(ex, probe, *probe.point("area", 300, 200), button=button)


def test_double_click(ex, probe):
    x, y = probe.point("area", 250, 60)
    mark = probe.log.mark()
    ex.perform(DoubleClick(x=x, y=y))
    double = probe.log.wait_for(_is("double"), mark)
    assert (double["x_root"], double["y_root"]) == (x, y)
    presses = [e for e in probe.log.since(mark) if e["ev"] == "press"]
    assert len(presses) == 2


def test_drag_moves_with_button_held(ex, probe):
    (x1, y1), (x2, y2) = probe.point("area", 20, 30), probe.point("area", 420, 260)
    mark = probe.log.mark()
    ex.perform(Drag(x=x1, y=y1, to_x=x2, to_y=y2))
    release = probe.log.wait_for(_is("release", 1), mark)
    events = probe.log.since(mark)
    press = next(e for e in events if e["ev"] == "press")
    held = [e for e in events if e["ev"] == "motion" and e["state"] & 0x100]  # Button1Mask
    assert (press["x_root"], press["y_root"]) == (x1, y1)
    assert (release["x_root"], release["y_root"]) == (x2, y2)
    assert held and (held[-1]["x_root"], held[-1]["y_root"]) == (x2, y2)
    assert len({(e["x_root"], e["y_root"]) for e in held}) >= 2  # it really moved in steps


# Tk 8.6 reports X buttons 6/7 (horizontal wheel) as buttons 4/5 with the Shift bit.
@pytest.mark.parametrize("direction,button,shifted", [
    ("up", 4, False), ("down", 5, False), ("left", 4, True), ("right", 5, True),
])
def test_scroll_direction(ex, probe, direction, button, shifted):
    x, y = probe.point("area", 200, 150)
    mark = probe.log.mark()
    ex.perform(Scroll(x=x, y=y, direction=direction, amount=3))
    probe.log.wait_for(lambda e: e["ev"] == "release" and len(
        [p for p in probe.log.since(mark) if p["ev"] == "release"]) >= 3, mark)
    wheel = [e for e in probe.log.since(mark) if e["ev"] == "press"]
    assert [e["button"] for e in wheel] == [button] * 3
    assert all(bool(e["state"] & 1) == shifted for e in wheel)
    assert all((e["x_root"], e["y_root"]) == (x, y) for e in wheel)


def _focus_field(ex, probe, name):
    x, y = probe.point(name, 30, 5)
    mark = probe.log.mark()
    ex.perform(Click(x=x, y=y))
    probe.log.wait_for(lambda e: e["ev"] == "release", mark)


def _clear(ex, probe, name):
    _focus_field(ex, probe, name)
    ex.perform(Key(keys="ctrl+a"))
    ex.perform(Key(keys="backspace"))
    probe.wait_content(name, "")


def test_type_unicode_exactly(ex, probe):
    _clear(ex, probe, "e1")
    text = "café 你好 <tag> & ünïcode"
    ex.perform(Type(text=text))
    assert probe.wait_content("e1", text)["e1"] == text


def test_type_many_distinct_non_ascii_chars(ex, probe):
    """More distinct exotic characters than spare keycodes: spares get reused."""
    _clear(ex, probe, "e2")
    text = "".join(chr(0x4E00 + 7 * i) for i in range(40)) + " αβγδεζηθικλμνξοπρστυφχψω ЖЩЮЯ <>"
    ex.perform(Type(text=text))
    assert probe.wait_content("e2", text, timeout=10)["e2"] == text


def test_every_keymap_update_names_the_same_range(sb, ex, probe):
    """libX11 forgets notifies it reads while re-reading the map (Keyboard._send_rows): each names every spare."""
    conn = x11.connect(sb.display, sb.xauthority)  # MappingNotify reaches every client
    try:
        _clear(ex, probe, "e1")
        ex.perform(Type(text="ᚠᚢ"))
        ex.perform(Type(text="ꙮ"))
        probe.wait_content("e1", "ᚠᚢꙮ")
        conn.sync()
        notes = []
        while conn.pending_events():
            event = conn.next_event()
            if event.type == X.MappingNotify and event.request == X.MappingKeyboard:
                notes.append((event.first_keycode, event.count))
    finally:
        conn.close()
    assert len(notes) >= 2
    assert len(set(notes)) == 1, notes


def test_newlines_and_tabs_in_text_widget(ex, probe):
    _clear(ex, probe, "text")
    ex.perform(Type(text="line one\nline\ttwo"))
    assert probe.wait_content("text", "line one\nline\ttwo")["text"] == "line one\nline\ttwo"


def test_chord_arrives_as_chord(ex, probe):
    _clear(ex, probe, "e1")
    ex.perform(Type(text="old text"))
    probe.wait_content("e1", "old text")
    mark = probe.log.mark()
    ex.perform(Key(keys="ctrl+a"))
    chord = probe.log.wait_for(_is("select_all"), mark)
    assert chord["w"] == "e1" and chord["state"] & 0x4  # ControlMask
    ex.perform(Type(text="new"))
    assert probe.wait_content("e1", "new", mark)["e1"] == "new"


def test_shifted_symbol_chord_adds_shift(ex, probe):
    _focus_field(ex, probe, "e2")
    mark = probe.log.mark()
    ex.perform(Key(keys="ctrl+shift+t"))
    event = probe.log.wait_for(lambda e: e["ev"] == "key" and e["keysym"].lower() == "t", mark)
    assert event["state"] & 0x5 == 0x5  # Shift + Control


def test_focus_stays_when_pointer_moves_away(ex, probe):
    _clear(ex, probe, "e2")
    ex.perform(Hover(x=probe.point("area", 500, 250)[0], y=probe.point("area", 500, 250)[1]))
    ex.perform(Hover(x=SIZE[0] - 5, y=SIZE[1] - 5))  # outside the window: the root
    ex.perform(Type(text="still here"))
    assert probe.wait_content("e2", "still here")["e1"] != "still here"


def test_click_then_type_goes_to_clicked_field(ex, probe):
    """The WM's click grab freezes the press; keys must not overtake it."""
    for i in range(8):
        target = ("e1", "e2")[i % 2]
        x, y = probe.point(target, 40, 5)
        mark = probe.log.mark()
        ex.perform(Click(x=x, y=y))
        ex.perform(Type(text="q"))
        key = probe.log.wait_for(lambda e: e["ev"] == "key" and e["keysym"] == "q", mark)
        assert key["w"] == target


@pytest.mark.parametrize("bad", [
    Click(x=SIZE[0], y=10),
    Click(x=10, y=SIZE[1]),
    Drag(x=10, y=10, to_x=10, to_y=SIZE[1] + 50),
    Scroll(x=SIZE[0] + 1, y=0),
    Key.model_construct(type="key", keys=["ctrl", "hyperdrive"]),
    Type(text="ok so far\x07"),
])
def test_invalid_actions_send_nothing(ex, probe, bad):
    _focus_field(ex, probe, "e1")
    time.sleep(0.1)  # the probe reports contents every 30 ms: let earlier typing land
    before = probe.content()
    mark = probe.log.mark()
    with pytest.raises(ActionError) as info:
        ex.perform(bad)
    assert "\n" not in str(info.value)
    x, y = probe.point("area", 7, 9)
    ex.perform(Click(x=x, y=y))
    probe.log.wait_for(lambda e: e["ev"] == "release" and (e["x_root"], e["y_root"]) == (x, y), mark)
    events = probe.log.since(mark)
    first_press = next(i for i, e in enumerate(events) if e["ev"] == "press")
    assert not [e for e in events[:first_press] if e["ev"] in ("key", "press", "release", "content")]
    time.sleep(0.1)
    assert {k: probe.content()[k] for k in ("e1", "e2", "text")} == {k: before[k] for k in ("e1", "e2", "text")}


def test_wait_done_fail(ex):
    assert 90 <= ex.perform(Wait(seconds=0.1)) < 1000
    assert ex.perform(Done()) < 5
    assert ex.perform(Fail(reason="x")) < 5


def test_worker_death_is_reported_then_restarted(ex, probe):
    os.kill(ex.pid, signal.SIGKILL)
    with pytest.raises(ExecutorError, match="worker"):
        ex.perform(Hover(x=5, y=5))
    x, y = probe.point("area", 33, 44)
    _click_and_check(ex, probe, x, y)
    assert ex.alive


def test_wrong_screen_size_is_refused(sb):
    with pytest.raises(ExecutorError, match="not the expected 800x600"):
        Executor(sb.display, xauthority=sb.xauthority, screen_size=(800, 600))


def test_size_is_read_from_the_display(sb):
    with Executor(sb.display, xauthority=sb.xauthority) as executor:
        assert executor.screen_size == SIZE
    assert not executor.alive


def test_unreachable_display_is_one_clear_error(sb):
    with pytest.raises(ExecutorError, match="cannot use display") as info:
        Executor(":65000", xauthority=sb.xauthority)
    assert "\n" not in str(info.value)


# -- GLM-V additions: hold_keys modifiers, triple click, mobile input_text ---------------------------

# (alt+click is openbox's window-move binding, so the app never sees it: not tested here)
@pytest.mark.parametrize("modifiers,mask", [(["ctrl"], 0x4), (["ctrl", "shift"], 0x5), (["shift"], 0x1)])
def test_click_with_held_keys(ex, probe, modifiers, mask):
    x, y = probe.point("area", 140, 90)
    mark = probe.log.mark()
    ex.perform(Click(x=x, y=y, modifiers=modifiers))
    press = probe.log.wait_for(_is("press", 1), mark)
    release = probe.log.wait_for(_is("release", 1), mark)
    assert press["state"] & 0xD == mask and release["state"] & 0xD == mask
    assert (press["x_root"], press["y_root"]) == (x, y)
    # the keys went up again: the next plain click carries no modifier
    mark = probe.log.mark()
    ex.perform(Click(x=x, y=y))
    assert probe.log.wait_for(_is("press", 1), mark)["state"] & 0xD == 0


def test_scroll_and_drag_with_held_keys(ex, probe):
    x, y = probe.point("area", 200, 150)
    mark = probe.log.mark()
    ex.perform(Scroll(x=x, y=y, direction="down", amount=1, modifiers=["ctrl"]))
    wheel = probe.log.wait_for(_is("press", 5), mark)
    assert wheel["state"] & 0x4
    (x1, y1), (x2, y2) = probe.point("area", 30, 30), probe.point("area", 200, 120)
    mark = probe.log.mark()
    ex.perform(Drag(x=x1, y=y1, to_x=x2, to_y=y2, modifiers=["shift"]))
    release = probe.log.wait_for(_is("release", 1), mark)
    assert release["state"] & 0x1 and (release["x_root"], release["y_root"]) == (x2, y2)


def test_triple_click(ex, probe):
    from deskpilot.actions.models import TripleClick

    x, y = probe.point("area", 260, 70)
    time.sleep(0.6)  # earlier clicks must not count towards this one (Tk's multi-click time)
    mark = probe.log.mark()
    ex.perform(TripleClick(x=x, y=y))
    triple = probe.log.wait_for(_is("triple"), mark)
    assert (triple["x_root"], triple["y_root"]) == (x, y)
    assert len([e for e in probe.log.since(mark) if e["ev"] == "press"]) == 3


def test_input_text_clicks_clears_types_and_presses_enter(ex, probe):
    from deskpilot.actions.models import InputText

    _clear(ex, probe, "e1")
    ex.perform(Type(text="old"))
    probe.wait_content("e1", "old")
    _focus_field(ex, probe, "e2")
    x, y = probe.point("e1", -6, 5)
    mark = probe.log.mark()
    ex.perform(InputText(x=x, y=y, text="new", override=True))
    assert probe.wait_content("e1", "new", mark)["e1"] == "new"
    enter = probe.log.wait_for(lambda e: e["ev"] == "key" and e["keysym"] == "Return", mark)
    assert enter["w"] == "e1"
    mark = probe.log.mark()
    ex.perform(InputText(x=x, y=y, text="+more", override=False))
    assert probe.wait_content("e1", "new+more", mark)["e1"] == "new+more"


def test_bad_modifier_is_refused_before_anything_is_sent(ex):
    with pytest.raises(ActionError, match="unknown key name"):
        ex.perform(Click.model_construct(type="click", x=5, y=5, button="left", modifiers=["hyper"]))
