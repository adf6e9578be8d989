"""The loop speaking GLM-V as trained, on a real sandbox with the demo form and scripted replies:
one user turn always (retries are history), memory reset without Memory:, a structured answer
validated against a schema with one retry, and every attempt's prompt and sampling recorded."""

from __future__ import annotations

import json

from pydantic import BaseModel

from deskpilot.agent.dialects.render import prompt_text
from deskpilot.agent.loop.agent import Agent
from deskpilot.agent.records.models import Status
from deskpilot.agent.desk.session import SessionSpec, open_sandbox, wait_until_ready
from deskpilot.demo import demo_app
from deskpilot.agent.records.trajectory import load_run
from deskpilot.model_backend import ScriptedBackend
from deskpilot.perception import Capturer

B, E = "<|begin_of_box|>", "<|end_of_box|>"


class Contact(BaseModel):
    name: str
    saved: bool


def test_glmv_loop_one_turn_memory_reset_and_checked_answer(tmp_path):
    replies = [
        f"The Name field is empty; I click it.\n{B}left_click(start_box='[500,300]', element_info='Name'){E}\n"
        'Memory:\n[{"field": "name"}]',
        f"I click the Email field.\n{B}left_click(start_box='[500,420]', element_info='Email'){E}",  # no Memory:
        f"Now I will click.\n{B}left_klick(start_box='[500,300]'){E}",  # does not parse
        f"The form is filled.\n{B}DONE(answer='Ada Lovelace'){E}",  # not the JSON the schema asks for
        f"The form is filled.\n{B}DONE(answer='{{\"name\": \"Ada Lovelace\", \"saved\": false}}'){E}\nMemory:\n[]",
    ]
    backend = ScriptedBackend(replies)
    spec = SessionSpec(size=(1280, 800), apps=[demo_app(tmp_path / "form.json")])
    sb, _ = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer)
            with Agent(backend, sb, run_dir=tmp_path / "run", capturer=capturer, output_schema=Contact) as agent:
                result = agent.run("Tell me the name in the form and whether it was saved")
        finally:
            capturer.close()

    assert result.status == Status.DONE, result.reason
    assert result.output == Contact(name="Ada Lovelace", saved=False)
    texts = [prompt_text(r.messages) for r in backend.requests]
    assert all(len(r.messages) == 1 and r.messages[0].role == "user" for r in backend.requests)
    assert all(r.temperature == 0.001 and r.max_tokens == 8192 and r.thinking for r in backend.requests)
    assert all("<|" not in t for t in texts)
    assert "Contact" in texts[0] and '"saved"' in texts[0]  # the prompt tells the model the answer's shape
    assert 'Memory:\n[{"field": "name"}]\n# Output Format' in texts[1]
    assert "Memory:\n[]\n# Output Format" in texts[2]  # step 2 gave no Memory: -> reset
    # the retry after the unparseable reply: same screen, the failed attempt closes the history
    assert "step 3: Screenshot:(Omitted in context.) Thought: Now I will click. left_klick(start_box='[500,300]')" in texts[3]
    assert "could not be performed: no action found" in texts[3]
    assert "could not be performed: the answer is not JSON" in texts[4]

    run = load_run(tmp_path / "run")
    assert len(run.steps) == 3  # both retries belong to step 3
    step3 = run.steps[2]
    assert [a.prompt for a in step3.attempts] == texts[2:4] and step3.prompt == texts[4]
    assert [a.error for a in step3.attempts] == [
        "no action found: reply with one call from the action space, such as left_click(start_box='[x,y]')",
        "the answer is not JSON (Expecting value at character 0)"]
    assert step3.sampling == {"temperature": 0.001, "top_p": None, "max_tokens": 8192, "thinking": True}
    assert all(a.sampling == step3.sampling for a in step3.attempts)
    assert "<image 1280x800>" in step3.prompt
    assert run.end.output == {"name": "Ada Lovelace", "saved": False}
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["sampling"]["temperature"] == 0.001
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Prompt of attempt 1" in html and "temperature 0.001" in html


def test_an_answer_that_never_matches_ends_as_error_after_one_retry(tmp_path):
    schema = tmp_path / "total.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}))
    bad = f"Read it.\n{B}DONE(answer='{{\"total\": \"twelve\"}}'){E}"
    backend = ScriptedBackend([bad], loop=True)
    spec = SessionSpec(size=(1280, 800), apps=[demo_app(tmp_path / "form.json")])
    sb, _ = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer)
            with Agent(backend, sb, run_dir=tmp_path / "run", capturer=capturer, output_schema=schema) as agent:
                result = agent.run("What is the total?")
        finally:
            capturer.close()
    assert result.status == Status.ERROR and result.output is None
    assert result.reason == "after 2 tries: the answer does not match the schema: total: 'twelve' is not of type 'number'"
    assert len(backend.requests) == 2


def test_answer_schema_checks_and_one_line_errors(tmp_path):
    from deskpilot.agent.loop.answers import AnswerSchema
    from deskpilot.errors import ConfigError

    schema = AnswerSchema({"type": "array", "items": {"type": "integer"}})
    assert schema.check("[1, 2]") == [1, 2]
    for answer, message in [(None, "DONE has no answer"), ("[1, 'a']", "not JSON"),
                            ('[1, "a"]', "1: 'a' is not of type 'integer'")]:
        try:
            schema.check(answer)
        except ValueError as err:
            assert message in str(err)
        else:
            raise AssertionError(answer)
    bad = tmp_path / "bad.json"
    for text, message in [("{", "is not JSON"), ("[]", "must be a JSON object"),
                          ('{"type": "nonsense"}', "is not a valid JSON schema")]:
        bad.write_text(text)
        try:
            AnswerSchema.from_file(bad)
        except ConfigError as err:
            assert message in str(err) and "\n" not in str(err)
        else:
            raise AssertionError(text)


def test_cli_run_with_dialect_template_and_output_schema(tmp_path):
    from typer.testing import CliRunner

    from deskpilot.cli import app

    schema = tmp_path / "count.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}))
    template = tmp_path / "short.j2"
    template.write_text("Task: {{ task }}\n{{ action_space }}\n{{ notes|join('\\n') }}\nMemory: {{ memory }}\n")
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([f"Three windows are open.\n{B}DONE(answer='{{\"n\": 3}}'){E}\nMemory:\n[]"]))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "How many windows are open?", "--script", str(script),
                                      "--dialect", "glm-5v", "--prompt-template", str(template),
                                      "--output-schema", str(schema), "--size", "800x600", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert 'answer: {"n": 3}' in result.output
    run = load_run(out)
    assert run.end.output == {"n": 3} and run.settings["dialect"] == "glm-5v"
    assert run.settings["sampling"]["temperature"] == 1.0  # glm-5v's default
    prompt = run.steps[0].prompt
    assert prompt.startswith("Task: How many windows are open?\n\n### {left,right,middle}_click")
    assert "hold_keys" in prompt and '"required":["n"]' in prompt and prompt.endswith("Memory: []\n<image 800x600>")

    bad = CliRunner().invoke(app, ["run", "x", "--script", str(script), "--dialect", "glm-9v", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2
    assert "unknown dialect 'glm-9v': choose one of glm-4.5v, glm-4.1v, glm-5v" in bad.output
