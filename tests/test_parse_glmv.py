"""Parser additions for the GLM-V family, on hand-written replies in the models' formats.

Bare and lower-case terminals, left_triple_click, hold_keys as held modifiers,
the newer left_drag form, unclosed boxes next to Memory, prose after a type
call, every key name in the official key maps, and mobile input_text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deskpilot.actions.keys import normalize_key
from deskpilot.actions.parse import ParseError, parse_glm_reply

CASES = json.loads((Path(__file__).parent / "fixtures" / "glm_replies" / "glmv_family.json").read_text("utf-8"))

# Every name in the official GLM-V desktop key maps, and the key it means.
OFFICIAL_KEYS = {
    "alt": "alt", "apostrophe": "'", "arrowdown": "down", "arrowleft": "left", "arrowright": "right",
    "arrowup": "up", "backslash": "\\", "backspace": "backspace", "backtick": "`", "bksp": "backspace",
    "capslock": "capslock", "cmd": "win", "comma": ",", "command": "win", "ctl": "ctrl", "ctrl": "ctrl",
    "control": "ctrl", "del": "delete", "delete": "delete", "dot": ".", "down": "down", "downarrow": "down",
    "end": "end", "enter": "enter", "equal": "=", "equals": "=", "esc": "esc", "escape": "esc",
    "forwarddelete": "delete", "forward-delete": "delete", "fwddelete": "delete", "grave": "`", "home": "home",
    "insert": "insert", "keypadenter": "enter", "kpenter": "enter", "left": "left", "leftarrow": "left",
    "leftbracket": "[", "meta": "win", "minus": "-", "opt": "alt", "option": "alt", "pagedn": "pagedown",
    "pagedown": "pagedown", "page_down": "pagedown", "pageup": "pageup", "page_up": "pageup", "period": ".",
    "plus": "+", "quote": "'", "return": "enter", "right": "right", "rightarrow": "right", "rightbracket": "]",
    "semicolon": ";", "shift": "shift", "slash": "/", "space": "space", "spacebar": "space", "super": "win",
    "super_l": "win", "tab": "tab", "tilde": "~", "up": "up", "uparrow": "up", "win": "win",
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_glmv_reply(case):
    step = parse_glm_reply(case["content"], None, width=1000, height=1000)
    action = step.action.model_dump()
    for key, value in case["action"].items():
        assert action[key] == value, key
    if "model_points" in case:
        assert [list(p) for p in step.model_points] == case["model_points"]
        assert [list(p) for p in step.action.points()] == case["model_points"]  # 1000 px: 1 px per thousandth
    for field in ("memory", "element_info", "thought"):
        if field in case:
            assert getattr(step, field) == case[field], field


@pytest.mark.parametrize("name,key", sorted(OFFICIAL_KEYS.items()))
def test_every_official_key_name(name, key):
    assert normalize_key(name) == key
    assert normalize_key(name.upper()) == key


def test_hold_keys_names_must_be_keys():
    reply = "<|begin_of_box|>left_click(start_box='[5,5]', hold_keys='hyper', element_info='x')<|end_of_box|>"
    with pytest.raises(ParseError, match="unknown key name 'hyper'"):
        parse_glm_reply(reply, None, width=100, height=100)


@pytest.mark.parametrize("text", [
    "I am done.",  # lower case inside prose is not an action
    "When the page loads I will wait and then click.",
    "<|begin_of_box|>the DONE button<|end_of_box|>",
])
def test_terminal_words_in_prose_are_not_actions(text):
    with pytest.raises(ParseError):
        parse_glm_reply(text, None, width=100, height=100)


def test_bare_terminal_only_from_the_visible_answer():
    # a DONE in the thinking text is the model musing, not its answer
    with pytest.raises(ParseError):
        parse_glm_reply("Still loading.", "Once it loads I can say DONE", width=100, height=100)
