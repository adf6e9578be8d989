"""Property tests: any formatting round-trips to the right pixels; any text is safe."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deskpilot.actions.parse import ParseError, parse_glm_reply

SIDES = st.integers(min_value=28, max_value=7680)
VALUES = st.one_of(st.integers(0, 999), st.floats(0, 999, allow_nan=False).map(lambda v: round(v, 2)))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
B, E = "<|begin_of_box|>", "<|end_of_box|>"


def _num(value: float, style: int) -> str:
    return str(int(value)) if float(value).is_integer() and style % 2 == 0 else repr(float(value))


def _coords(numbers: list[float], style: int, draw_sep: str) -> str:
    body = draw_sep.join(_num(n, style) for n in numbers)
    forms = [
        f"'[{body}]'", f'"[{body}]"', f"'[[{body}]]'", f"'({body})'", f"'<{body}>'",
        f"[{body}]", f"[[{body}]]", f"({body})",
        "'<{tag}>{inner}</{tag}>'", "<{tag}>{inner}</{tag}>",
    ]
    form = forms[style % len(forms)]
    if "{tag}" in form:
        tag = "point" if len(numbers) == 2 else "bbox"
        return form.format(tag=tag, inner=" ".join(_num(n, style) for n in numbers))
    return form


def _wrap(call: str, style: int) -> str:
    wrappers = [
        f"I will act now.\n{B}{call}{E}\nMemory:\n[]",
        f"{B}{call}{E}",
        f"Thought: acting\nAction: {call}",
        f"Reason: acting\nAction：{call}\nMemory: []",
        f"```python\n{call}\n```",
        f"<think>planning</think>Go.\n{B}{call}{E}",
        call,
    ]
    return wrappers[style % len(wrappers)]


def _expected(value: float, size: int) -> float:
    return min(value / 1000 * size, size - 1)


@FAST
@given(
    st.sampled_from(["left_click", "right_click", "middle_click", "hover", "left_double_click", "scroll"]),
    st.lists(VALUES, min_size=4, max_size=4),
    st.booleans(), SIDES, SIDES, st.integers(0, 99), st.sampled_from([",", ", ", " , "]), st.booleans(),
)
def test_pointed_actions_round_trip(name, values, as_box, width, height, style, sep, keyword):
    if as_box:
        numbers = [min(values[0], values[2]), min(values[1], values[3]), max(values[0], values[2]), max(values[1], values[3])]
        target = ((numbers[0] + numbers[2]) / 2, (numbers[1] + numbers[3]) / 2)
    else:
        numbers = values[:2]
        target = (numbers[0], numbers[1])
    box = _coords(numbers, style, sep)
    extra = ", direction='up', step=3" if name == "scroll" else ""
    call = f"{name}(start_box={box}{extra})" if keyword or name == "scroll" else f"{name}({box})"
    step = parse_glm_reply(_wrap(call, style // 10), None, width=width, height=height)
    (x, y), = step.action.points()
    assert abs(x - _expected(target[0], width)) <= 1
    assert abs(y - _expected(target[1], height)) <= 1
    assert 0 <= x < width and 0 <= y < height


@FAST
@given(st.lists(VALUES, min_size=4, max_size=4), SIDES, SIDES, st.integers(0, 99))
def test_drag_round_trips(values, width, height, style):
    start, end = _coords(values[:2], style, ","), _coords(values[2:], style + 1, ",")
    call = f"left_drag(start_box={start}, end_box={end}, element_info='x')"
    step = parse_glm_reply(_wrap(call, style // 10), None, width=width, height=height)
    points = step.action.points()
    for (x, y), (vx, vy) in zip(points, [values[:2], values[2:]]):
        assert abs(x - _expected(vx, width)) <= 1 and abs(y - _expected(vy, height)) <= 1


@FAST
@given(st.text(max_size=200), st.sampled_from(["'", '"']))
def test_typed_text_round_trips(text, quote):
    escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")
    step = parse_glm_reply(f"{B}type(content={quote}{escaped}{quote}){E}", None, width=100, height=100)
    assert step.action.text == text


@pytest.mark.parametrize("text", ["</THINK>", "<THINK>", "<think>a</think>", "x </think> y"])
def test_think_tags_typed_inside_the_box_are_text(text):
    """Found by the property above: a think tag the model types is not the end of its thinking."""
    for quote in "'\"":
        step = parse_glm_reply(f"<think>plan</think>{B}type(content={quote}{text}{quote}){E}", None, width=100, height=100)
        assert step.action.text == text


VALID = [
    f"Click it.\n{B}left_click(start_box='[500,500]', element_info='OK'){E}\nMemory:\n[{{\"a\": 1}}]",
    f"{B}type(content='hello \\'world\\'\\n'){E}",
    'Memory: []\nReason: r\nAction: {"action_type": "click", "box_2d": [[1,2,3,4]]}',
    f"<think>x</think>{B}scroll(start_box=<point>1 2</point>, direction='down', step=5){E}",
]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_only_raises_parse_error(text):
    try:
        parse_glm_reply(text, None, width=1920, height=1080)
    except ParseError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 3), st.text(max_size=3)), max_size=6))
def test_mutated_replies_only_raise_parse_error(base, edits):
    text = base
    for pos, kind, chunk in edits:
        pos %= len(text) + 1
        if kind == 0:
            text = text[:pos] + chunk + text[pos:]
        elif kind == 1:
            text = text[:pos] + text[pos + len(chunk) + 1 :]
        else:
            text = text[:pos] + chunk + text[pos + 1 :]
    try:
        step = parse_glm_reply(text, None, width=1920, height=1080)
    except ParseError:
        return
    for x, y in step.action.points():
        assert 0 <= x < 1920 and 0 <= y < 1080


def test_pathological_inputs_finish_fast():
    inputs = [
        "(" * 200_000, "[" * 200_000, "{" * 200_000, "left_click(" * 50_000, "'" * 200_000,
        f"{B}" * 50_000, "left_click(start_box=" + "[" * 100_000, "Memory: " + "[" * 100_000,
        "type(content='" + "a" * 900_000, "x" * 2_000_000, "<think>" * 100_000,
        "left_click(start_box='[1,2]', " + "a=1, " * 100_000 + ")",
        '{"action_type": ' * 40_000, "<bbox>" * 100_000,
    ]
    for text in inputs:
        started = time.perf_counter()
        try:
            parse_glm_reply(text, None, width=1920, height=1080)
        except ParseError:
            pass
        assert time.perf_counter() - started < 3, text[:40]


def test_code_payload_is_rejected_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    payloads = [
        f"left_click(start_box=\"__import__('os').system('touch {target}')\")",
        f"left_click(start_box=__import__('os').system('touch {target}'))",
        f"type(content=__import__('os').system('touch {target}'))",
        f"key(keys=exec(\"open('{target}', 'w')\"))",
        f'{{"action_type": "click", "box_2d": "__import__(\'os\').system(\'touch {target}\')"}}',
    ]
    for payload in payloads:
        for text in (payload, f"{B}{payload}{E}"):
            try:
                step = parse_glm_reply(text, None, width=1920, height=1080)
            except ParseError:
                continue
            # If something parsed, it is inert data, never executed.
            assert step.action.type in ("type", "key")
    assert not target.exists()
