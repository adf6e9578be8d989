"""The GLM-V family's prompts: trained structure, no special tokens, generated schema blocks,
dialect layouts, user templates and sampling defaults."""

from __future__ import annotations

import ast
import re
import typing

import pytest
from PIL import Image

from deskpilot.actions.models import ACTION_ADAPTER, Scroll
from deskpilot.actions.parse import parse_glm_reply
from deskpilot.actions.parsing.desktop import _SIGNATURES, canonical_name
from deskpilot.agent.dialects import DIALECT_NAMES, GLM41VDialect, GLM45VDialect, GLM5VDialect, HistoryEntry, make_dialect
from deskpilot.agent.dialects import render
from deskpilot.agent.dialects.render import prompt_text
from deskpilot.agent.loop.agent import Agent, LoopSettings
from deskpilot.errors import ConfigError
from deskpilot.model_backend import ScriptedBackend
from deskpilot.model_backend.types import ImagePart, TextPart
from deskpilot.perception.observation import Observation

B, E = "<|begin_of_box|>", "<|end_of_box|>"
SPECIAL = re.compile(r"<\|[^|>]{1,40}\|>|</?think>")


def _obs(size=(1280, 800), colour=(9, 9, 9)) -> Observation:
    return Observation(image=Image.new("RGB", size, colour), timestamp=0.0)


def _history(n: int) -> list[HistoryEntry]:
    return [HistoryEntry(thought=f"step {i} {B}boxed{E}<|endoftext|>", action_text=f"{B}left_click(start_box='[{i},{i}]'){E}",
                         screenshot=Image.new("RGB", (1280, 800), (i, i, i))) for i in range(1, n + 1)]


def _texts(request) -> list[str]:
    return [p.text for m in request.messages for p in m.content if isinstance(p, TextPart)]


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_no_special_tokens_in_anything_we_send(name):
    dialect = make_dialect(name, secrets={"sudo password": "pw<|user|>"}, extra_instructions=f"Never {B}guess{E}.",
                           user_response="<|assistant|>yes")
    failed = dialect.failed_attempt(f"<think>x</think>I click {B}left_click(start_box='[2000,1]'){E}<|endoftext|>",
                                    f"the start_box is out of range; write it between {B} and {E}")
    requests = [
        dialect.build_request(f"Open {B}Settings{E}", _obs(), [*_history(6), failed], [{"k": f"{E}v"}]),
        dialect.build_locate_request(_obs(), f"the {B}OK{E} button"),
        dialect.build_ask_request(_obs(), "What is <|image|> here?"),
    ]
    for request in requests:
        assert len(request.messages) == 1 and request.messages[0].role == "user"
        for text in _texts(request):
            assert not SPECIAL.search(text), SPECIAL.search(text).group()
    history = prompt_text(requests[0].messages)
    assert "I click left_click(start_box='[2000,1]')" in history and "could not be performed" in history


def test_a_failed_attempt_takes_no_screenshot_slot():
    dialect = GLM45VDialect()
    failed = dialect.failed_attempt("no call here", "no action found")
    request = dialect.build_request("t", _obs(), [*_history(6), failed], None)
    images = [p for p in request.messages[0].content if isinstance(p, ImagePart)]
    assert [im.image.getpixel((0, 0))[0] for im in images[:-1]] == [3, 4, 5, 6]
    request = dialect.build_request("t", _obs(), [*_history(2), failed], None)  # fewer than four: all shown
    assert len([p for p in request.messages[0].content if isinstance(p, ImagePart)]) == 3


def test_glm45v_sections_in_the_trained_order():
    text = prompt_text(GLM45VDialect().build_request("Rename the file", _obs(), _history(5), [{"a": 1}]).messages)
    order = ["You are a GUI agent", "0-999", "# Task:\nRename the file", "# Task Platform\nUbuntu", "# Action Space\n",
             "### {left,right,middle}_click", "Call rule: `{left,right,middle}_click(start_box='[x,y]', element_info='')`",
             "### hover", "### left_double_click", "### left_drag", "### key", "### type", "### scroll", "### WAIT",
             "### DONE", "### FAIL", "# Historical Actions and Current Memory\nHistory:",
             "\nstep 1: Screenshot:(Omitted in context.) Thought: step 1 boxed\nAction: left_click(start_box='[1,1]')",
             "\nstep 2: Screenshot:<image 640x400> Thought:", "\nstep 5: Screenshot:<image 640x400> Thought:",
             'Memory:\n[{"a": 1}]\n# Output Format', "Memory:\n[{\"key\": \"value\"}, ...]", "# Some Additional Notes",
             "Current Screenshot:\n<image 1280x800>"]
    positions = [text.find(part) for part in order]
    assert -1 not in positions, order[positions.index(-1)]
    assert positions == sorted(positions)
    assert text.endswith("Current Screenshot:\n<image 1280x800>")


def _block(text: str, heading: str) -> dict:
    start = text.index(f"### {heading}\n")
    body = text[text.index("\n{", start) + 1:]
    end = body.index("\n}\n") + 2 if "\n}\n" in body else body.index("\n}") + 2
    return ast.literal_eval(body[:end])


def _example_value(param: str, schema: dict):
    if param.endswith("_box"):
        return "'[500,500]'"
    if schema.get("type") == "integer":
        return "3"
    if "enum" in schema:
        return repr(schema["enum"][0])
    return {"keys": "'ctrl+c'", "content": "'hi'", "hold_keys": "'ctrl'", "answer": "'42'"}.get(param, "'x'")


ACTION_OF = {"left_click": "click", "right_click": "click", "middle_click": "click", "hover": "hover",
             "left_double_click": "double_click", "left_triple_click": "triple_click", "left_drag": "drag",
             "key": "key", "type": "type", "scroll": "scroll", "WAIT": "wait", "DONE": "done", "FAIL": "fail"}


@pytest.mark.parametrize("name", DIALECT_NAMES)
def test_schema_blocks_match_the_action_models_and_the_parser(name):
    dialect = make_dialect(name)
    text = prompt_text(dialect.build_request("t", _obs(), [], None).messages)
    action_types = {typing.get_args(m)[0] for m in (a.model_fields["type"].annotation for a in
                    typing.get_args(typing.get_args(ACTION_ADAPTER._type)[0]))}
    for call in dialect.calls:
        shown = _block(text, call.heading) if name != "glm-4.1v" else call.schema()
        assert shown == call.schema()  # the block in the prompt is the model's schema, rendered
        props = shown["parameters"]["properties"]
        for param_name in shown["parameters"]["required"]:
            assert param_name in props
        for call_name in call.names:
            canonical = canonical_name(call_name)
            assert canonical is not None, call_name  # the parser knows every call we offer
            known = set(_SIGNATURES[canonical]) | {"hold_keys", "start_element_info", "end_element_info"}
            assert set(props) <= known, (call_name, set(props) - known)
            args = ", ".join(f"{p}={_example_value(p, s)}" for p, s in props.items())
            step = parse_glm_reply(f"{B}{call_name}({args}){E}", None, width=1000, height=1000)
            assert step.action.type == ACTION_OF[call_name] and step.action.type in action_types
            if "hold_keys" in props:
                assert step.action.modifiers == ["ctrl"]
            if call_name == "DONE":
                assert step.action.answer == "42"
    scroll = _block(text, "scroll")["parameters"]["properties"] if name != "glm-4.1v" else None
    if scroll:
        assert set(scroll["direction"]["enum"]) <= set(typing.get_args(Scroll.model_fields["direction"].annotation))
        assert scroll["step"]["default"] == Scroll.model_fields["amount"].default
        assert scroll["start_box"] == {"type": "array", "items": {"type": "integer"},
                                       "description": scroll["start_box"]["description"]}


def test_glm5v_extended_space_none_history_and_user_response():
    dialect = GLM5VDialect(user_response="Use the second account.")
    text = prompt_text(dialect.build_request("t", _obs(), [], None).messages)
    assert "History:\nNone\nMemory:\n[]" in text
    assert "Call rule: `{left,right,middle}_click(start_box='[x,y]', hold_keys='', element_info='')`" in text
    assert "### left_{double,triple}_click" in text and "### FAIL" not in text
    drag = _block(text, "left_drag")
    assert drag["parameters"]["required"] == ["start_box", "start_element_info", "end_box", "end_element_info"]
    assert _block(text, "{left,right,middle}_click")["parameters"]["required"] == ["start_box", "element_info"]
    assert text.index("Latest user response:\nUse the second account.") < text.index("Current Screenshot:")
    assert "Latest user response" not in prompt_text(GLM5VDialect().build_request("t", _obs(), [], None).messages)
    assert GLM5VDialect.sampling.temperature == 1.0 and GLM5VDialect.sampling.top_p == 1.0


def test_glm41v_layout_screenshots_first_and_its_history():
    request = GLM41VDialect().build_request("Find the invoice", _obs(colour=(200, 1, 1)), _history(6), [{"n": 2}])
    parts = request.messages[0].content
    images = [p for p in parts if isinstance(p, ImagePart)]
    assert all(isinstance(p, ImagePart) for p in parts[:5]) and isinstance(parts[5], TextPart)
    assert images[0].image.size == (1280, 800) and images[0].image.getpixel((0, 0)) == (200, 1, 1)
    assert [im.image.getpixel((0, 0))[0] for im in images[1:]] == [3, 4, 5, 6]  # oldest first, 50 %
    assert {im.image.size for im in images[1:]} == {(640, 400)}
    text = prompt_text(request.messages)
    assert "0-1000" in text and "0-999" not in text
    assert "left_drag(start_box='[x1,y1]', end_box='[x2,y2]', element_info='')\n# " in text
    assert text.endswith("History actions:" + "".join(
        f"\nstep {i}: step {i} boxed\nleft_click(start_box='[{i},{i}]')" for i in range(1, 7)) + '\nMemory:\n[{"n": 2}]\n')


def test_user_template_replaces_the_wording(tmp_path):
    template = tmp_path / "mine.j2"
    template.write_text(
        "TASK={{ task }} on {{ screen.width }}x{{ screen.height }} ({{ platform }}), max {{ coordinate_max }}\n"
        "{% for s in history %}[{{ s.n }}] {{ s.thought }} -> {{ s.action }}{{ s.image }}\n{% endfor %}"
        "MEM={{ memory }}\n{{ action_space[:20] }}|{{ actions[0].signature }}|{{ notes|join(';') }}\n")
    dialect = GLM45VDialect(prompt_template=template, extra_instructions="be quick")
    request = dialect.build_request("Do X", _obs(), _history(2), [1])
    text = prompt_text(request.messages)
    assert text.startswith("TASK=Do X on 1280x800 (Ubuntu), max 999\n[1] step 1 boxed -> left_click(start_box='[1,1]')")
    assert "[2] step 2 boxed -> left_click(start_box='[2,2]')<image 640x400>" in text
    assert "MEM=[1]\n\n### {left,right,mid|left_click(start_box='[x,y]', element_info='')|be quick" in text
    assert text.endswith("<image 1280x800>")  # never placed by the template: sent last
    assert len(request.messages) == 1


@pytest.mark.parametrize("source,message", [
    ("{% for x in history %}", "mine.j2, line 1: Unexpected end of template"),
    ("{{ nosuch }}", "mine.j2: 'nosuch' is undefined"),
    ("{{ 1 / 0 }}", "mine.j2: ZeroDivisionError: division by zero"),
    # issue 26: a user's template runs sandboxed and bounded
    ("{{ cycler.__init__.__globals__.os.system('touch PWNED') }}", "not allowed in a template: access to attribute"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed in a template"),
    ("{% include '/etc/passwd' %}", "/etc/passwd (only files in"),
    ("{% include '../outside.j2' %}", "../outside.j2 (only files in"),
    ("{% include 'mine.j2' %}", "recursion too deep"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion too deep"),
    ("{{ 'x' * 10**9 }}", "repeating 1 item(s) 1000000000 times is too big"),
    ("{{ 7 ** 99999999 }}", "7 ** 99999999 is too big for a prompt"),
    ("{{ 'x'|center(10**9) }}", "passed to a filter: too big"),
    ("{{ task.ljust(10**9) }}", "passed to a call: too big"),
    ("{% for i in range(100000) %}{{ 'y' * 20 }}{% endfor %}", "the prompt grew past 1000000 characters"),
    ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "still rendering after 1 s"),
])
def test_bad_templates_are_one_line_errors(tmp_path, monkeypatch, source, message):
    monkeypatch.setattr(render, "RENDER_SECONDS", 1.0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outside.j2").write_text("OUTSIDE")
    folder = tmp_path / "templates"
    folder.mkdir()
    path = folder / "mine.j2"
    path.write_text(source)
    with pytest.raises(ConfigError) as info:
        GLM45VDialect(prompt_template=path).build_request("t", _obs(), [], None)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        GLM45VDialect(prompt_template=tmp_path / "none.j2")


def test_a_template_includes_files_of_its_own_folder(tmp_path):
    (tmp_path / "part.j2").write_text("PART for {{ task }}")
    path = tmp_path / "mine.j2"
    path.write_text("{% include 'part.j2' %}|{{ screenshot }}")
    text = prompt_text(GLM45VDialect(prompt_template=path).build_request("Do X", _obs(), [], None).messages)
    assert text == "PART for Do X|<image 1280x800>"


def test_sampling_defaults_and_overrides():
    assert GLM45VDialect.sampling.temperature == 0.001 and GLM45VDialect.sampling.max_tokens == 8192
    assert GLM45VDialect.sampling.thinking is True and GLM41VDialect.sampling.temperature == 0.001
    assert GLM45VDialect().build_locate_request(_obs(), "OK").temperature == 0.001
    assert GLM5VDialect().build_ask_request(_obs(), "why?").top_p == 1.0
    agent = Agent(ScriptedBackend([]), None, GLM45VDialect(), run_dir="unused", report=False)
    assert agent.sampling() == {"temperature": 0.001, "top_p": None, "max_tokens": 8192, "thinking": True}
    agent = Agent(ScriptedBackend([]), None, GLM5VDialect(), run_dir="unused", report=False,
                  settings=LoopSettings(temperature=0.2, max_tokens=100, thinking=False))
    assert agent.sampling() == {"temperature": 0.2, "top_p": 1.0, "max_tokens": 100, "thinking": False}


def test_agent_takes_a_dialect_by_name():
    agent = Agent(ScriptedBackend([]), None, "glm-5v", run_dir="unused", report=False)
    assert isinstance(agent.dialect, GLM5VDialect)


def test_unknown_dialect_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown dialect 'glm-9v': choose one of glm-4.5v, glm-4.1v, glm-5v"):
        make_dialect("glm-9v")


def test_the_documented_template_example_renders(tmp_path):
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "prompt-templates.md").read_text()
    example = doc.split("```jinja\n", 1)[1].split("```", 1)[0]
    (tmp_path / "doc.j2").write_text(example)
    text = prompt_text(GLM45VDialect(prompt_template=tmp_path / "doc.j2").build_request(
        "Do X", _obs(), _history(5), None).messages)
    assert "step 1: Screenshot:(Omitted in context.) Thought: step 1 boxed" in text
    assert "step 2: Screenshot:<image 640x400> Thought:" in text and text.endswith("Current Screenshot:\n<image 1280x800>")
