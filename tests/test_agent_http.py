"""The loop over real HTTP: OpenAICompatibleBackend -> a real `transformers serve`
running the tiny random GLM-4.5V-architecture checkpoint.

Its replies are random text, so the run must end as ERROR after the parse
retries; what is checked is that the trajectory records every request, reply,
error and timing correctly.
"""

from __future__ import annotations

import pytest

from deskpilot.agent.loop.agent import Agent, LoopSettings
from deskpilot.agent.records.models import Status
from deskpilot.agent.records.report import build_report
from deskpilot.agent.desk.session import SessionSpec, open_sandbox, wait_until_ready
from deskpilot.demo import demo_app
from deskpilot.agent.records.trajectory import load_run
from backend_fixtures import tiny_checkpoint, tiny_server  # noqa: F401 (fixtures)
from deskpilot.model_backend import OpenAICompatibleBackend
from deskpilot.perception import Capturer, image_tokens

pytestmark = pytest.mark.slow


def test_loop_against_transformers_serve_records_everything(tmp_path, tiny_server):
    base_url, model = tiny_server
    assert model == "glm-4.5v"  # served under the vLLM recipe's name
    backend = OpenAICompatibleBackend(base_url, model, timeout=120, max_retries=0)  # no flavor: detected
    spec = SessionSpec(size=(1280, 800), apps=[demo_app(tmp_path / "form.json")])
    sb, _ = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        wait_until_ready(sb, capturer)
        with Agent(backend, sb, run_dir=tmp_path / "run", capturer=capturer,
                   settings=LoopSettings(parse_retries=1, max_tokens=24, thinking=False)) as agent:
            result = agent.run("Fill in the form")
        capturer.close()
    backend.close()

    assert result.status == Status.ERROR
    assert "did not parse after 2 tries" in result.reason
    run = load_run(tmp_path / "run")
    assert len(run.steps) == 1 and run.end.status == Status.ERROR
    step = run.steps[0]
    assert step.request.images == 1 and step.request.thinking is False
    assert step.request.image_tokens == image_tokens(1280, 800) + 2
    assert len(step.attempts) == 2
    assert all(a.error and isinstance(a.raw_reply, str) for a in step.attempts)
    # both calls really went over HTTP, and the server counted the image's tokens
    assert step.usage["prompt_tokens"] > 2 * image_tokens(1280, 800)
    assert step.usage["completion_tokens"] > 0
    assert step.timings_ms["model"] > 0 and step.timings_ms["capture"] > 0
    assert step.error and not step.performed
    assert backend.dropped_fields == {"skip_special_tokens"}
    # every attempt holds its exact single-turn prompt and sampling; the retry shows the failed attempt
    first, second = step.attempts
    for attempt in (first, second):
        assert attempt.prompt.startswith("You are a GUI agent") and attempt.prompt.count("<image 1280x800>") == 1
        assert "<|" not in attempt.prompt and "[assistant]" not in attempt.prompt
        assert attempt.sampling == {"temperature": 0.001, "top_p": None, "max_tokens": 24, "thinking": False}
    assert "step 1:" not in first.prompt and "step 1: Screenshot:(Omitted in context.)" in second.prompt
    assert "could not be performed: " + first.error in second.prompt
    assert run.settings["sampling"]["temperature"] == 0.001
    html = build_report(tmp_path / "run").read_text()
    assert "Rejected reply 2" in html and "ERROR" in html and "Prompt of attempt 2" in html


def test_demo_takes_runs_endpoint_options_against_transformers_serve(tmp_path, tiny_server):
    """`deskpilot demo` with a live endpoint and no --flavor: the 422 is handled, the run records it."""
    from typer.testing import CliRunner

    from deskpilot.cli import app

    base_url, model = tiny_server
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--base-url", base_url, "--model", model, "--no-thinking",
                                      "--max-tokens", "16", "--temperature", "0.5", "--dialect", "glm-4.1v",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 1, result.output  # random replies: the form is not filled
    run = load_run(out)
    assert run.end.status == Status.ERROR and "did not parse" in run.end.reason
    assert "HTTP 422" not in run.end.reason
    assert run.settings["dialect"] == "glm-4.1v" and run.settings["flavor"] == "auto"
    assert run.settings["sampling"] == {"temperature": 0.5, "top_p": None, "max_tokens": 16, "thinking": False}
    first = run.steps[0].attempts[0]
    assert first.prompt.startswith("<image 1280x800>You are a GUI agent") and "0-1000" in first.prompt
