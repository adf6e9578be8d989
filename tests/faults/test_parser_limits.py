"""What one reply may carry, and how long it may take: bounds with messages the model can act on."""

from __future__ import annotations

import json
import time

import pytest
from deskpilot.actions.models import Click, Done, Type
from deskpilot.actions.parse import ParseError, parse_glm_reply
from deskpilot.actions.parsing import desktop

B, E = "<|begin_of_box|>", "<|end_of_box|>"
CLICK = f"{B}left_click(start_box='[500,500]'){E}"
SIZE = 990_000
BOUND_S = 1.5  # "well under a second" on a quiet machine; this one is shared


def parse(content: str, reasoning: str | None = None):
    return parse_glm_reply(content, reasoning, width=1000, height=1000)


WORST_CASES = {
    # the audit's ~460 rescans: 20 boxes x 20 unclosed calls, each read to the end (38 s before)
    "boxes of unclosed calls": (B + "left_click('" * 20 + E) * (SIZE // 260),
    "one unclosed string": "left_click('" + "a" * SIZE,
    "unclosed JSON actions": '{"action": "click", "box_2d": "' * (SIZE // 32),
    "escapes": "type(content='" + "\\n" * (SIZE // 2),
    "quotes followed by blanks": "left_click('" + ("'" + " " * 500 + "x") * (SIZE // 502),
    "deep brackets": "left_click(" + "[" * SIZE,
    "action labels": "Action: left_click('x\n" * (SIZE // 22),
    "memory markers": "Memory: [\n" * (SIZE // 10),
    "open think": "<think>" + "left_click('" * (SIZE // 12),
}


@pytest.mark.parametrize("name", WORST_CASES)
def test_a_megabyte_reply_of_a_worst_case_shape_parses_quickly(name):
    started = time.perf_counter()
    with pytest.raises(ParseError):
        parse(WORST_CASES[name])
    assert time.perf_counter() - started < BOUND_S


@pytest.mark.parametrize("depth", [9, 300, 990, 5000])
def test_deep_memory_is_a_parse_error_naming_the_limit(depth):
    with pytest.raises(ParseError, match="Memory list is nested more than 8 levels"):
        parse(CLICK + "\nMemory: " + "[" * depth + "]" * depth)


def test_memory_within_the_limits_is_kept():
    step = parse(CLICK + '\nMemory: [["a", ["b"]], {"k": [1, 2]}]')
    assert step.memory == [["a", ["b"]], {"k": [1, 2]}]


def test_oversized_memory_is_a_parse_error():
    with pytest.raises(ParseError, match="Memory list is longer than 20000 characters"):
        parse(CLICK + "\nMemory: [" + ",".join(['"note"'] * 5000) + "]")


def test_overlong_thought_is_a_parse_error():
    with pytest.raises(ParseError, match="explanation before the action is longer than 20000"):
        parse("I think. " * 3000 + CLICK)


def test_overlong_action_says_so():
    with pytest.raises(ParseError, match="not closed within 24000 characters"):
        parse(f"{B}type(content='" + "x" * 30_000 + f"'){E}")


def test_typed_text_with_a_lone_surrogate_is_named():
    with pytest.raises(ParseError, match=r"lone UTF-16 surrogate, U\+D800\) at position 1"):
        parse(f"{B}type(content='a\ud800b'){E}")
    with pytest.raises(ParseError, match="lone UTF-16 surrogate"):
        parse('{"action_type": "type", "text": "\udc00"}')


def test_lone_surrogates_elsewhere_are_replaced_so_the_step_can_be_recorded():
    step = parse(f"Look \ud800here\n{B}left_click(start_box='[1,2]', element_info='x\udfff'){E}\nMemory: [\"m\ud801\"]")
    assert isinstance(step.action, Click)
    assert "\ufffd" in step.thought and step.element_info == "x\ufffd" and step.memory == ["m\ufffd"]
    json.dumps(step.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
    done = parse(f"{B}DONE(answer='ok\ud800'){E}")
    assert isinstance(done.action, Done) and done.action.answer == "ok\ufffd"


@pytest.mark.parametrize("reply", [
    '{"action_type": "click", "box_2d": [[' + "9" * 400 + ",1,2,3]]}",
    "scroll(start_box='[1,2]', direction='down', step=" + "9" * 400 + ")",
    "DONE(answer=" + "9" * 5000 + ")",
])
def test_huge_integers_are_named(reply):
    with pytest.raises(ParseError, match="more than 40 digits"):
        parse(reply)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_named(constant):
    with pytest.raises(ParseError, match=f"{constant} is not a number"):
        parse('{"action_type": "click", "box_2d": [[' + constant + ",1,2,3]]}")


def test_a_parser_bug_is_a_parse_error_that_names_it(monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("start_box")

    monkeypatch.setattr("deskpilot.actions.parsing.reply.map_call", broken)
    with pytest.raises(ParseError, match=r"internal error KeyError: 'start_box'"):
        parse(CLICK)


def test_ordinary_replies_still_parse():
    assert parse(CLICK).action == Click(x=500, y=500)
    typed = parse(f"{B}type(content='{'é' * desktop.MAX_TYPED}'){E}").action
    assert isinstance(typed, Type) and len(typed.text) == desktop.MAX_TYPED


class SlowParsingDialect:
    """The GLM dialect with a parse that takes 30 s (stands in for any slow parser)."""

    def __new__(cls):
        from deskpilot.agent.dialects import GLM45VDialect

        class Slow(GLM45VDialect):
            def parse(self, content, reasoning, width, height):
                time.sleep(30)
                return super().parse(content, reasoning, width, height)

        return Slow()


def test_the_step_time_limit_holds_while_a_reply_is_parsed(tmp_path):
    from deskpilot.agent.loop.agent import Agent
    from deskpilot.agent.loop.policy import Policy
    from deskpilot.agent.records.models import Status
    from deskpilot.agent.desk.session import SessionSpec, open_sandbox
    from deskpilot.agent.records.trajectory import load_run
    from deskpilot.model_backend import ScriptedBackend

    seen: dict[str, float] = {}

    def clock(event) -> None:  # from the step's start to the run's end: not the input worker's start-up
        seen.setdefault(event.kind, time.monotonic())

    sb, _ = open_sandbox(SessionSpec(size=(320, 240)))
    with sb:
        with Agent(ScriptedBackend([CLICK]), sb, SlowParsingDialect(), run_dir=tmp_path / "run",
                   policy=Policy(step_timeout_s=1), report=False, on_event=clock) as agent:
            result = agent.run("anything")
    assert result.status == Status.STOPPED and "while parsing the reply" in result.reason
    assert seen["end"] - seen["thinking"] < 10  # not the 30 s the parse takes
    assert load_run(tmp_path / "run").end.status == Status.STOPPED


def test_a_json_escape_for_a_lone_surrogate_is_replaced_too():
    step = parse('Action: {"action_type": "answer", "text": "P\\ud800aris"}')
    assert step.action.answer == "P\ufffdaris"
    json.dumps(step.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
    with pytest.raises(ParseError, match="lone UTF-16 surrogate"):
        parse('{"action_type": "type", "text": "a\\udc00"}')


def test_input_text_checks_its_text_like_type():
    with pytest.raises(ParseError, match="lone UTF-16 surrogate"):
        parse('{"action_type": "input_text", "box_2d": [[1,2,3,4]], "text": "Par\\ud800is"}')
    with pytest.raises(ParseError, match="longer than 10000"):
        parse('{"action_type": "input_text", "box_2d": [[1,2,3,4]], "text": "' + "x" * 10_001 + '"}')
