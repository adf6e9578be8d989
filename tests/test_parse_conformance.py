"""Conformance table: hand-written GLM-4.5V replies -> expected actions and pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deskpilot.actions.parse import ParseError, parse_glm_reply

FIXTURES = Path(__file__).parent / "fixtures" / "glm_replies"
CASES = json.loads((FIXTURES / "conformance.json").read_text(encoding="utf-8"))
ERRORS = json.loads((FIXTURES / "errors.json").read_text(encoding="utf-8"))
SIZES = [(1920, 1080), (1280, 800), (2560, 1440)]
_UNSET = object()


def test_table_is_large_and_covers_every_action():
    assert len(CASES) >= 40
    kinds = {case["action"]["type"] for case in CASES}
    assert kinds == {"click", "double_click", "hover", "drag", "scroll", "key", "type", "wait", "done", "fail",
                     "input_text"}
    buttons = {case["action"].get("button") for case in CASES if case["action"]["type"] == "click"}
    assert buttons == {"left", "right", "middle"}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_reply_parses_to_expected_pixels(case, size):
    width, height = size
    step = parse_glm_reply(case["content"], case["reasoning"], width=width, height=height)
    action = step.action.model_dump()
    for key, value in case["action"].items():
        assert action[key] == value, key
    assert [list(p) for p in step.action.points()] == case["pixels"][f"{width}x{height}"]
    assert [list(p) for p in step.model_points] == case["model_points"]
    for field in ("thought", "element_info", "memory"):
        if field in case:
            assert getattr(step, field) == case[field], field
    if "expected_reasoning" in case:
        assert step.reasoning == case["expected_reasoning"]
    assert step.raw == case["content"]
    assert "<|begin_of_box|>" not in step.action_text and "<|end_of_box|>" not in step.action_text
    assert "<|begin_of_box|>" not in step.thought


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c["id"])
def test_bad_reply_gives_short_parse_error(case):
    with pytest.raises(ParseError) as info:
        parse_glm_reply(case["content"], None, width=1920, height=1080)
    assert case["message_contains"] in info.value.message
    assert len(info.value.message) < 200
    assert "\n" not in info.value.message


def test_action_text_is_the_call_as_written():
    content = "Open it.\n<|begin_of_box|>left_double_click(start_box='[5,6]', element_info='a.txt')<|end_of_box|>\nMemory:\n[]"
    step = parse_glm_reply(content, None, width=1000, height=1000)
    assert step.action_text == "left_double_click(start_box='[5,6]', element_info='a.txt')"
    assert step.thought == "Open it."


def test_reasoning_joins_separate_and_inline_thinking():
    content = "<think>inline part</think>Go.\n<|begin_of_box|>WAIT()<|end_of_box|>"
    step = parse_glm_reply(content, "separate part", width=100, height=100)
    assert step.reasoning is not None
    assert "inline part" in step.reasoning and "separate part" in step.reasoning
    assert "inline part" not in step.thought


def test_action_only_in_reasoning_when_content_is_empty():
    # vLLM puts everything into reasoning_content when </think> never came.
    step = parse_glm_reply("", "I click it <|begin_of_box|>left_click(start_box='[100,100]')<|end_of_box|>", width=1000, height=500)
    assert step.action.points() == [(100, 50)]


def test_visible_action_wins_over_a_call_inside_thinking():
    content = "<think>maybe hover(start_box='[1,1]')</think><|begin_of_box|>left_click(start_box='[500,500]')<|end_of_box|>"
    step = parse_glm_reply(content, None, width=1000, height=1000)
    assert step.action.type == "click" and step.action.points() == [(500, 500)]


def test_bad_memory_never_fails_the_step():
    for memory in ("[", "[{'a': }]", "{not json}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "42"):
        step = parse_glm_reply(f"<|begin_of_box|>DONE()<|end_of_box|>\nMemory: {memory}", None, width=10, height=10)
        assert step.action.type == "done"
        assert step.memory is None


def test_memory_json_dict_is_wrapped_in_a_list():
    step = parse_glm_reply('<|begin_of_box|>DONE()<|end_of_box|>\nMemory: {"a": 1}', None, width=10, height=10)
    assert step.memory == [{"a": 1}]


def test_json_in_memory_is_not_taken_for_the_action():
    content = "left_click(start_box='[100,100]')\nMemory: [{\"action_type\": \"wait\"}]"
    step = parse_glm_reply(content, None, width=1000, height=1000)
    assert step.action.type == "click"
    assert step.memory == [{"action_type": "wait"}]


def test_non_text_input_is_a_parse_error():
    with pytest.raises(ParseError):
        parse_glm_reply(None, None, width=10, height=10)  # type: ignore[arg-type]
