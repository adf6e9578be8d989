"""`deskpilot run --expect-*`: a run is PASSED only when the model said DONE and every check held."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from deskpilot.cli import app
from deskpilot.demo import DEMO_APP, DEMO_REPLIES
from deskpilot.agent.records.trajectory import load_run

runner = CliRunner()


def demo_args(tmp_path: Path, replies: list[str]) -> tuple[list[str], Path]:
    out = tmp_path / "output"
    out.mkdir()
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(replies))
    return ["--app", f"/usr/bin/python3 {DEMO_APP} --save-to {out / 'form.json'}", "--share", str(out),
            "--script", str(script), "--size", "1280x800", "--quiet"], out


def test_passed_when_done_and_every_check_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    replies = json.loads(DEMO_REPLIES.read_text()) + ["Yes, the status line under the form says Saved."]
    args, out = demo_args(tmp_path, replies)
    result = runner.invoke(app, ["run", "fill the form", *args, "--out", "run",
                                 "--expect-file", "output/form.json:contains:Ada Lovelace",
                                 "--expect-text", "Saved.", "--expect", "the form says it was saved"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "PASSED after 6 step(s)" in said
    assert "PASS model agrees: 'the form says it was saved': model says yes" in said
    run = load_run(tmp_path / "run")
    assert run.end.status.value == "PASSED"
    assert [(c.check_kind, c.passed) for c in run.checks] == [("text_visible", True), ("file_contains", True),
                                                              ("expect", True)]
    assert run.checks[0].evidence["found"] and run.queries[0].kind == "ask"  # the judgement is recorded like ask
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Checks (3 of 3 passed)" in html and 'class="status PASSED"' in html


def test_failed_names_the_check_and_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, out = demo_args(tmp_path, ["The form is already done.\n<|begin_of_box|>DONE()<|end_of_box|>\nMemory:\n[]"])
    (tmp_path / "deskpilot.toml").write_text('checks = [{text_visible = "Contact form"}, '
                                             '{file = "output/form.json", json = {path = "name", equals = "Ada"}}]\n')
    result = runner.invoke(app, ["run", "fill the form", *args, "--out", "run", "--expect-text", "Saved."])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())  # the terminal wraps long lines
    assert "FAILED after 1 step(s): 2 of 3 check(s) failed" in said
    assert "text 'Saved.' is visible: 'Saved.' is not on screen (OCR read:" in said
    assert "PASS text 'Contact form' is visible" in said
    run = load_run(tmp_path / "run")
    assert run.end.status.value == "FAILED" and [c.passed for c in run.checks] == [True, False, False]
    assert run.checks[1].message == f"{tmp_path / 'output' / 'form.json'} does not exist"
    assert run.checks[1].message in run.end.reason and "file output/form.json has name == 'Ada'" in run.end.reason


def test_a_bad_check_in_the_config_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deskpilot.toml").write_text('checks = [{file = "a.txt", contain = "x"}]\n')
    result = runner.invoke(app, ["run", "t", "--app", "xterm", "--script", "x.json"])
    assert result.exit_code == 2
    assert "file check on 'a.txt' needs exactly one of exists, contains" in " ".join(result.output.split())
    (tmp_path / "deskpilot.toml").unlink()
    bad_flag = runner.invoke(app, ["run", "t", "--app", "xterm", "--script", "x.json", "--expect-file", "a.txt"])
    assert bad_flag.exit_code == 2 and "--expect-file is PATH:contains:TEXT" in " ".join(bad_flag.output.split())


def test_cache_flag_saves_the_model_calls_on_the_second_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, out = demo_args(tmp_path, json.loads(DEMO_REPLIES.read_text()))
    first = runner.invoke(app, ["run", "fill the form", *args, "--out", "run1", "--cache", "form-cache.json"])
    assert first.exit_code == 0, first.output
    assert "cache: 0 model call(s) saved" in first.output and (tmp_path / "form-cache.json").is_file()
    (out / "form.json").unlink()
    (tmp_path / "replies.json").write_text("[]")  # no model at all for the second run
    second = runner.invoke(app, ["run", "fill the form", *args, "--out", "run2", "--cache", "form-cache.json",
                                 "--expect-file", "output/form.json:contains:ada@example.org"])
    assert second.exit_code == 0, second.output
    said = " ".join(second.output.split())
    assert "PASSED after 6 step(s)" in said and "cache: 6 model call(s) saved" in said


def test_update_baselines_flag_writes_the_screenshot_baseline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESKPILOT_UPDATE_BASELINES", "0")  # restored afterwards: the flag sets it in-process
    args, _ = demo_args(tmp_path, ["The form is open.\n<|begin_of_box|>DONE()<|end_of_box|>\nMemory:\n[]"])
    (tmp_path / "deskpilot.toml").write_text('checks = [{screenshot_matches = "shots/form.png"}]\n')
    result = runner.invoke(app, ["run", "look at the form", *args, "--out", "run1"])
    assert result.exit_code == 1 and "form.png does not exist" in " ".join(result.output.split()), result.output
    result = runner.invoke(app, ["--update-baselines", "run", "look at the form", *args, "--out", "run2"])
    assert result.exit_code == 0, result.output
    assert "written from the current screen" in " ".join(result.output.split())
    assert (tmp_path / "shots" / "form.png").is_file()
    run = load_run(tmp_path / "run2")
    assert run.checks[0].passed and run.checks[0].evidence["updated"] is True
