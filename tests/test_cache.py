"""Cached runs on the real demo form: record once, replay with no model, re-ask from the step that changed."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from bombs import huge_png
from deskpilot.agent.records.cache import CacheFile, RunCache
from deskpilot.agent.loop.agent import Agent
from deskpilot.agent.records.models import Status
from deskpilot.agent.desk.session import Session
from deskpilot.demo import DEMO_REPLIES, DEMO_TASK, demo_app
from deskpilot.agent.records.trajectory import load_run
from deskpilot.errors import ConfigError
from deskpilot.model_backend import ScriptedBackend

SIZE = (1280, 800)
EXPECTED = {"name": "Ada Lovelace", "email": "ada@example.org"}


def run_form(tmp_path: Path, name: str, replies: list[str], cache: Path, layout: str = "standard", dialect=None,
             task: str = DEMO_TASK):
    share = tmp_path / f"{name}-share"
    share.mkdir()
    saved = share / "form.json"
    backend = ScriptedBackend(replies)
    from deskpilot.agent.desk.session import SessionSpec

    spec = SessionSpec(size=SIZE, shares=[str(share)], apps=[demo_app(saved, layout)])
    with Session(spec=spec) as desk:
        with Agent(backend, desk, dialect, run_dir=tmp_path / name, cache=RunCache(cache, task)) as agent:
            result = agent.run(task)
    got = json.loads(saved.read_text()) if saved.is_file() else None
    return result, backend, got


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The first run: the model (scripted) decides every step; the cache is written."""
    tmp = tmp_path_factory.mktemp("cache")
    cache = tmp / "cache" / "form.json"
    result, backend, got = run_form(tmp, "run1", json.loads(DEMO_REPLIES.read_text()), cache)
    assert result.status == Status.DONE and got == EXPECTED, result.reason
    return tmp, cache, result, backend


def test_the_first_run_writes_the_cache(first):
    tmp, cache, result, backend = first
    assert len(backend.requests) == 6 and result.totals["model_calls_saved"] == 0
    data = CacheFile.model_validate_json(cache.read_text())
    assert data.task == DEMO_TASK and tuple(data.screen_size) == SIZE
    assert [s.action["type"] for s in data.steps] == ["click", "type", "click", "type", "click", "done"]


def test_a_second_run_needs_no_model(first, tmp_path):
    _, cache, _, _ = first
    before = cache.read_bytes()
    result, backend, got = run_form(tmp_path, "run2", [], cache)  # no replies at all: any model call fails
    assert result.status == Status.DONE, result.reason
    assert got == EXPECTED and backend.requests == []
    assert result.totals["model_calls_saved"] == 6
    run = load_run(tmp_path / "run2")
    assert all(s.cached for s in run.steps) and all(s.performed for s in run.steps[:5])
    assert cache.read_bytes() == before  # nothing changed, nothing rewritten
    html = (tmp_path / "run2" / "report.html").read_text()
    assert "6 step(s) came from the cache" in html


def test_after_a_layout_change_the_model_takes_over_from_the_changed_step(first, tmp_path):
    """Layout 'late': the form is the same until a name is typed, then the email row moves down."""
    _, cache, _, _ = first
    copy = tmp_path / "form-cache.json"
    copy.write_bytes(cache.read_bytes())
    box = "<|begin_of_box|>{}<|end_of_box|>\nMemory:\n[]"
    model = ["The email row moved down; I click its field.\n" + box.format("left_click(start_box='[500,480]')"),
             "I type the address.\n" + box.format("type(content='ada@example.org')"),
             "I press Save.\n" + box.format("left_click(start_box='[440,555,560,605]')"),
             "Saved.\n" + box.format("DONE()")]
    result, backend, got = run_form(tmp_path, "run3", model, copy, layout="late")
    assert result.status == Status.DONE, result.reason
    assert got == EXPECTED
    assert len(backend.requests) == 4 and result.totals["model_calls_saved"] == 2
    run = load_run(tmp_path / "run3")
    assert [s.cached for s in run.steps] == [True, True, False, False, False, False]
    summary = json.loads((tmp_path / "run3" / "cache.json").read_text())
    assert summary["followed_until"].startswith("step 3: the screen differs from the cached one")
    assert summary["rewritten"] is True
    rewritten = CacheFile.model_validate_json(copy.read_text())
    assert rewritten.steps[2].action == {"type": "click", "x": 640, "y": 384, "button": "left", "modifiers": []}


def test_a_cache_for_another_task_is_not_used(first, tmp_path):
    _, cache, _, _ = first
    other = RunCache(cache, "a different task")
    assert other.old is None and other.mismatch == "the cache was recorded for another task"
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="is not a deskpilot cache"):
        RunCache(broken, DEMO_TASK)


def test_secrets_stay_out_of_the_cache_and_come_back_from_the_run(tmp_path):
    """The email is a secret here: the file names it, a run with it types it, a run without asks the model."""
    from deskpilot.agent.dialects import GLM45VDialect

    email = EXPECTED["email"]
    cache = tmp_path / "form.json"
    replies = json.loads(DEMO_REPLIES.read_text())
    with_secret = GLM45VDialect(secrets={"EMAIL": email})
    result, _, got = run_form(tmp_path, "rec", replies, cache, dialect=with_secret)
    assert result.status == Status.DONE and got == EXPECTED, result.reason
    text = cache.read_text()
    assert email not in text and "***EMAIL***" in text
    steps = CacheFile.model_validate_json(text).steps
    assert [s.step for s in steps if s.secrets == ["EMAIL"]] == [4, 5, 6]  # typed, then in the model's memory
    assert steps[3].action == {"type": "type", "text": "***EMAIL***"}

    result, backend, got = run_form(tmp_path, "again", [], cache, dialect=GLM45VDialect(secrets={"EMAIL": email}))
    assert result.status == Status.DONE and got == EXPECTED and backend.requests == [], result.reason

    result, backend, got = run_form(tmp_path, "without", replies, cache)
    assert result.status == Status.DONE and got == EXPECTED, result.reason
    assert result.totals["model_calls_saved"] == 0 and len(backend.requests) == 6
    summary = json.loads((tmp_path / "without" / "cache.json").read_text())
    assert summary["followed_until"] == "the cache's task needs secret EMAIL, which this run lacks"


def test_a_step_needing_a_secret_the_run_lacks_goes_to_the_model(tmp_path):
    """The task names no secret, but the typed email is one: steps 1-3 come from the cache, 4-6 from the model."""
    from deskpilot.agent.dialects import GLM45VDialect

    cache = tmp_path / "form.json"
    replies = json.loads(DEMO_REPLIES.read_text())
    email = EXPECTED["email"]
    task = "Fill in the contact form and save it."
    dialect = GLM45VDialect(secrets={"EMAIL": email})
    result, _, got = run_form(tmp_path, "rec", replies, cache, dialect=dialect, task=task)
    assert result.status == Status.DONE and got == EXPECTED, result.reason
    assert CacheFile.model_validate_json(cache.read_text()).task_secrets == []
    result, backend, got = run_form(tmp_path, "without", replies[3:], cache, task=task)
    assert result.status == Status.DONE and got == EXPECTED, result.reason
    assert result.totals["model_calls_saved"] == 3 and len(backend.requests) == 3
    summary = json.loads((tmp_path / "without" / "cache.json").read_text())
    assert summary["followed_until"] == "step 4: the cached reply needs secret EMAIL, which this run lacks"


def _tamper(cache: Path, target: Path, step: int, **fields) -> Path:
    data = json.loads(cache.read_text())
    data["steps"][step - 1].update(fields)
    target.write_text(json.dumps(data))
    return target


@pytest.mark.parametrize("step,fields,why", [
    (1, {"screen_png": "not base64 at all!"}, "the cached screen is unusable: not base64"),
    (2, {"screen_png": base64.b64encode(huge_png()).decode()}, "the cached screen is unusable: more than 40000000 pixels"),
    (2, {"screen_png": base64.b64encode(b"GIF89a but not really").decode()}, "the cached screen is unusable: not a readable image"),
    (3, {"content": "no action in here at all"}, "the cached reply does not parse"),
])
def test_a_tampered_cache_entry_is_a_miss_and_the_model_decides(first, tmp_path, caplog, step, fields, why):
    """Issue 26: these ended the run with a traceback (screens) or ERROR (reply); now the model takes over."""
    _, cache, _, _ = first
    copy = _tamper(cache, tmp_path / "tampered.json", step, **fields)
    replies = json.loads(DEMO_REPLIES.read_text())
    result, backend, got = run_form(tmp_path, "run", replies[step - 1:], copy)
    assert result.status == Status.DONE and got == EXPECTED, result.reason
    assert result.totals["model_calls_saved"] == step - 1 and len(backend.requests) == 7 - step
    summary = json.loads((tmp_path / "run" / "cache.json").read_text())
    assert summary["followed_until"].startswith(f"step {step}: {why}")
    assert any(why in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert summary["rewritten"] is True and CacheFile.model_validate_json(copy.read_text()).steps[step - 1].content != "no action in here at all"


def test_a_folder_or_fifo_as_the_cache_is_refused_when_opened(tmp_path):
    with pytest.raises(ConfigError, match="is a folder; name a file"):
        RunCache(tmp_path, DEMO_TASK)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ConfigError, match="is not a regular file"):
        RunCache(tmp_path / "fifo", DEMO_TASK)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        RunCache(tmp_path / "file" / "sub" / "cache.json", DEMO_TASK)
