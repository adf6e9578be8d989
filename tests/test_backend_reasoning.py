"""split_reasoning: GLM's think block vs the visible answer."""

from __future__ import annotations

from deskpilot.model_backend import split_reasoning

BOX = "<|begin_of_box|>left_click(start_box='[500,500]')<|end_of_box|>"


def test_closed_think_block_is_split_and_boxes_kept():
    reasoning, content = split_reasoning(f"<think>\nThe OK button is centred.\n</think>\nClick it. {BOX}")
    assert reasoning == "The OK button is centred."
    assert content == f"Click it. {BOX}"


def test_no_think_block_is_all_content():
    assert split_reasoning(BOX) == (None, BOX)


def test_unclosed_think_stays_in_content():
    text = "<think>cut off by max_tokens"
    assert split_reasoning(text) == (None, text)


def test_empty_think_block_from_thinking_off():
    assert split_reasoning(f"<think></think>\n{BOX}") == ("", BOX)


def test_think_later_in_text_is_not_reasoning():
    text = f"{BOX} <think>x</think>"
    assert split_reasoning(text) == (None, text)
