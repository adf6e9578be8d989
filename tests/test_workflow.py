"""Workflow files: validation with line numbers, and every step kind on a real desktop (mousepad, xterm).

Agent steps are driven by scripted GLM-4.5V replies (written by hand in the
model's format); everything else is real: sandbox, window manager, editor,
keyboard input, files on the host.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from deskpilot.cli import app
from deskpilot.workflow import WorkflowError, parse_workflow, run_workflow
from deskpilot.workflow.record import read_log
from deskpilot.errors import ConfigError

runner = CliRunner()
needs_mousepad = pytest.mark.skipif(shutil.which("mousepad") is None, reason="mousepad is not installed")


def reply(call: str, thought: str = "Next step.") -> str:
    return f"{thought}\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


@pytest.mark.parametrize(
    "text, message",
    [
        ("steps:\n  - sleep: 1\n  - jump: 3\n", "line 3: a step is a mapping with exactly one of: launch, agent"),
        ("steps:\n  - sleep: 1\n    key: a\n", "line 2: a step is a mapping with exactly one of"),
        ("steps:\n  - agent: do it\n    max_step: 3\n", "line 3: max_step: unknown option 'max_step'"),
        ("steps:\n  - agent: do it\n    retries: 9\n", "line 3: retries: Input should be less than or equal to 5"),
        ("steps:\n  - key: ctrl+nokey\n", "line 2: key:"),
        ("vars: {a: 1}\nsteps:\n  - type: '{a} {b}'\n", "line 3: unknown variable {b}"),
        ("steps:\n  - agent: x\n    answer: 'no good'\n", "line 3: answer: answer names a variable"),
        ("steps:\n  - foreach: missing.csv\n    steps: [{sleep: 0}]\n", "does not exist"),
        ("desktop: {size: huge}\nsteps: [{sleep: 0}]\n", "line 1: desktop.size: a screen size is WIDTHxHEIGHT"),
        ("steps:\n  - sleep: 1\n  - sleep: [\n", "not valid YAML at line 4"),
        ("name: a\nname: b\nsteps: [{sleep: 0}]\n", "line 2: 'name' is given twice"),
        ("steps: []\n", "line 1: steps: List should have at least 1 item"),
        ("- sleep: 1\n", "a workflow is a mapping"),
        ("steps:\n  - check: {nothing: here}\n", "line 2: check:"),
        ("steps:\n  - click_txt: Save\n", "line 2: a step is a mapping with exactly one of: launch, agent, click_text,"
                                         " click, type, key, wait_for_text, wait_for_window, sleep, check, foreach, "
                                         "fill, wait_for, scroll (did you mean 'click_text' instead of 'click_txt'?)"),
        ("steps:\n  - scroll: [500, 1000]\n", "line 2: scroll: scroll is [x, y] in thousandths of the screen, 0 to 999; got [500, 1000]"),
        ("steps:\n  - wait_for_window: a\n    ignorecase: true\n",
         "line 3: ignorecase: unknown option 'ignorecase' (did you mean 'ignore_case' instead of 'ignorecase'?)"),
        ("desktop: {sise: 800x600}\nsteps: [{sleep: 0}]\n", "(did you mean 'size' instead of 'sise'?)"),
        ("name: x\nstep:\n  - sleep: 0\n", "line 2: step: unknown option 'step' (did you mean 'steps' instead of 'step'?)"),
        ("steps:\n  - sleep: 0\n  - launch: no-such-app-4711 --x\n",
         "line 3: launch: app 'no-such-app-4711' is not installed (not found on PATH)"),
        ("steps:\n  - launch: ./missing-tool.sh\n", "line 2: launch: app './missing-tool.sh' does not exist"),
    ],
)
def test_broken_files_are_refused_with_the_line(text, message, tmp_path):
    with pytest.raises(WorkflowError) as err:
        parse_workflow(text, "flow.yaml", base_dir=tmp_path)
    assert message in str(err.value)
    assert str(err.value).startswith("flow.yaml")


def test_variables_from_answers_csv_columns_and_the_command_line(tmp_path):
    (tmp_path / "people.csv").write_text("name,email\nAda,ada@example.org\n")
    text = (
        "vars: {out: 'report-{who}.txt'}\n"
        "steps:\n"
        "  - agent: 'read the total'\n    answer: total\n"
        "  - type: '{total} {{literal}} {\"json\": 1}'\n"
        "  - foreach: people.csv\n    steps:\n      - type: '{name} {email} {row_number} {out}'\n"
    )
    flow = parse_workflow(text, "f.yaml", cli_vars={"who": "me"}, base_dir=tmp_path)
    assert [s.kind for s in flow.steps] == ["agent", "type", "foreach"]
    with pytest.raises(WorkflowError, match="unknown variable {who}"):
        parse_workflow(text, "f.yaml", base_dir=tmp_path)


def test_workflow_check_command(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: tiny\nsteps:\n  - sleep: 0\n")
    result = runner.invoke(app, ["workflow", "check", str(flow)])
    assert result.exit_code == 0 and "ok" in result.output and "tiny, 1 step(s)" in result.output
    flow.write_text("steps:\n  - sleep: -1\n")
    result = runner.invoke(app, ["workflow", "check", str(flow)])
    assert result.exit_code == 2 and "line 2" in result.output
    result = runner.invoke(app, ["workflow", "run", str(flow.with_name("nope.yaml"))])
    assert result.exit_code == 2 and "does not exist" in result.output
    flow.write_text("steps:\n  - launch: no-such-app-4711\n")
    result = runner.invoke(app, ["workflow", "check", str(flow)])
    assert result.exit_code == 2 and "line 2: launch: app 'no-such-app-4711' is not installed" in result.output
    flow.write_text("steps:\n  - launch: xterm\n  - click_txt: OK\n")
    result = runner.invoke(app, ["workflow", "check", str(flow)])
    assert result.exit_code == 2 and "line 3:" in result.output and "did you mean 'click_text'" in result.output
    assert "Traceback" not in result.output


@needs_mousepad
def test_every_step_kind_on_a_real_editor(tmp_path, monkeypatch):
    """wait_for_window, key, type, agent (retried, answer into a variable), launch, sleep, check."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WF_TOKEN", "tok-93161")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("start\n")
    (tmp_path / "flow.yaml").write_text(
        "name: every-kind\n"
        "desktop: {size: 1024x700, apps: ['mousepad work/notes.txt'], shares: [work]}\n"
        "vars: {greeting: hello}\n"
        "secrets: [WF_TOKEN]\n"
        "steps:\n"
        "  - wait_for_window: notes.txt\n"
        "  - key: ctrl+end\n"
        "  - type: '{greeting} {WF_TOKEN} '\n"
        "  - agent: 'Read the number of the answer and report it'\n"
        "    retries: 1\n"
        "    max_steps: 3\n"
        "    answer: number\n"
        "    answer_schema: {type: integer, minimum: 1}\n"
        "  - type: 'answer={number}'\n"
        "  - key: ctrl+s\n"
        "  - launch: 'xterm -title second-app'\n"
        "  - wait_for_window: second-app\n"
        "  - sleep: 0.2\n"
        "  - check:\n"
        "      - {file: work/notes.txt, contains: \"start\\nhello tok-93161 answer=42\"}\n"
        "      - {file: work/notes.txt, exists: true}\n"
    )
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([
        reply("FAIL(reason='I cannot see it yet')", "The screen is not ready."),
        reply("WAIT()", "Let me look again."),
        reply("DONE(answer='42')", "The number is 42."),
    ]))
    result = runner.invoke(app, ["workflow", "run", "flow.yaml", "--script", str(script), "--out", "run"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work" / "notes.txt").read_text().rstrip("\n") == "start\nhello tok-93161 answer=42"
    records = read_log(tmp_path / "run")
    steps = [r for r in records if r["record"] == "step"]
    assert [s["kind"] for s in steps] == ["wait_for_window", "key", "type", "agent", "type", "key", "launch",
                                          "wait_for_window", "sleep", "check"]
    agent = steps[3]
    assert agent["answer"] == "42" and agent["agent_run"] == "agent_4_retry1"
    assert (tmp_path / "run" / "agent_4" / "trajectory.jsonl").is_file()  # the failed first try is kept
    assert records[-1]["record"] == "end" and records[-1]["ok"] is True
    assert "answer=42" in (tmp_path / "run" / "report.html").read_text()
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".html"):
            assert "tok-93161" not in path.read_text(errors="replace"), path


@needs_mousepad
def test_foreach_rows_one_sandbox_each_and_a_failing_check(tmp_path):
    """Each row writes its own new file from a fresh desktop; a failing check stops the run with exit 1."""
    (tmp_path / "out").mkdir()
    (tmp_path / "names.csv").write_text("name,city\nada,London\ngrace,Arlington\n")
    text = (
        "name: batch\n"
        "desktop: {size: 800x600, apps: ['mousepad out/{name}.txt'], shares: [out]}\n"
        "steps:\n"
        "  - foreach: names.csv\n"
        "    sandbox: per_row\n"
        "    steps:\n"
        "      - wait_for_window: '{name}.txt'\n"
        "      - type: '{row_number}: {name} lives in {city}'\n"
        "      - key: ctrl+s\n"
        "      - sleep: 0.3\n"
        "      - check: {file: 'out/{name}.txt', contains: '{name} lives in {city}'}\n"
        "  - check: {file: out/nobody.txt, exists: true}\n"
        "  - sleep: 0\n"
    )
    flow = parse_workflow(text, "batch.yaml", base_dir=tmp_path)
    result = run_workflow(flow, tmp_path / "run", base_dir=tmp_path)
    assert (tmp_path / "out" / "ada.txt").read_text().strip() == "1: ada lives in London"
    assert (tmp_path / "out" / "grace.txt").read_text().strip() == "2: grace lives in Arlington"
    assert not result.ok and result.error is None
    assert [s.number for s in result.steps][:5] == ["1.1.1", "1.1.2", "1.1.3", "1.1.4", "1.1.5"]
    assert result.steps[-1].number == "2" and result.steps[-1].status == "failed"
    end = read_log(tmp_path / "run")[-1]
    assert end["record"] == "end" and end["steps_not_run"] == 1
    assert "1 step(s) not run" in (tmp_path / "run" / "report.html").read_text()


def test_a_start_up_error_is_reported_and_recorded(tmp_path):
    flow = parse_workflow("desktop: {apps: ['false']}\nsteps:\n  - key: a\n", "f.yaml", base_dir=tmp_path)
    result = run_workflow(flow, tmp_path / "run", base_dir=tmp_path)
    assert not result.ok and "exited with code 1 before showing a window" in result.error
    assert read_log(tmp_path / "run")[-1]["status"] == "error"


def test_agent_steps_need_a_model(tmp_path):
    flow = parse_workflow("steps:\n  - agent: do it\n", "f.yaml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match="give a model"):
        run_workflow(flow, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@needs_mousepad
def test_ocr_steps_read_and_click_text_on_screen(tmp_path):
    """wait_for_text and click_text read the real screen (RapidOCR); a text that never shows fails the step."""
    pytest.importorskip("rapidocr")
    text = (
        "desktop: {size: 800x600, apps: [mousepad]}\n"
        "steps:\n"
        "  - wait_for_window: Mousepad\n"
        "  - click_text: Search\n    region: [0, 20, 400, 45]\n    timeout: 60\n"
        "  - wait_for_text: Find and Replace\n    region: [80, 45, 360, 225]\n    timeout: 60\n"
        "  - wait_for_text: not on this screen\n    region: [80, 45, 360, 225]\n    timeout: 0\n"
    )
    result = run_workflow(parse_workflow(text, "ocr.yaml", base_dir=tmp_path), tmp_path / "run", base_dir=tmp_path)
    assert [s.status for s in result.steps] == ["passed"] * 3 + ["failed"]
    assert "clicked 'Search'" in result.steps[1].message
    assert "did not appear" in result.steps[3].message and "Find and Replace" in result.steps[3].message
    assert set(result.steps[3].evidence) == {"screenshot", "ocr_text"}  # the frame OCR read, and its lines
    assert not result.ok


def test_foreach_does_not_follow_a_link_an_app_planted_in_its_share(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "rows.csv").write_text("name\nada\n")
    (tmp_path / "host.csv").write_text("name\nhost-only-secret\n")
    (tmp_path / "plant.sh").write_text(f'rm "$1" && ln -s {tmp_path / "host.csv"} "$1" && exec xterm -T planted\n')
    text = ("desktop: {size: 640x400, apps: ['sh plant.sh out/rows.csv'], shares: [out]}\n"
            "steps:\n"
            "  - wait_for_window: planted\n"
            "  - foreach: out/rows.csv\n"
            "    steps: [{type: '{name}'}]\n")
    flow = parse_workflow(text, "f.yaml", base_dir=tmp_path)
    result = run_workflow(flow, tmp_path / "run", base_dir=tmp_path)
    assert not result.ok
    assert result.steps[-1].message.startswith(f"foreach: {tmp_path / 'out' / 'rows.csv'} is a symbolic link: "
                                               "checks do not follow links (an app may have made it); evidence: ")
    assert "host-only-secret" not in (tmp_path / "run" / "report.html").read_text()


COUNTER = __import__("pathlib").Path(__file__).resolve().parent.parent / "deskpilot" / "eval" / "example" / "counter.py"


def test_an_expect_check_step_asks_the_workflows_model(tmp_path, monkeypatch):
    """`check: {expect: ...}` gets the workflow's backend (here --script replies) and the real screen it judges."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flow.yaml").write_text(
        "name: judged\n"
        f"desktop: {{size: 800x600, apps: ['python3 {COUNTER}']}}\n"
        "steps:\n"
        "  - wait_for_window: 'Counter: 0'\n"
        "  - check: [{expect: the counter shows 0}, {window_title: 'Counter: 0'}]\n"
        "  - check: {expect: the counter shows 7}\n"
    )
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(["<think>A big 0 in the middle.</think>yes, the counter reads 0.",
                                  "no, it reads 0, not 7."]))
    result = runner.invoke(app, ["workflow", "check", "flow.yaml"])
    assert result.exit_code == 0 and "note: expect checks (step 2, 3) ask a model" in result.output, result.output
    result = runner.invoke(app, ["workflow", "run", "flow.yaml", "--script", str(script), "--out", "run"])
    assert result.exit_code == 1, result.output
    steps = [r for r in read_log(tmp_path / "run") if r["record"] == "step"]
    assert [s["status"] for s in steps] == ["passed", "passed", "failed"]
    assert steps[1]["checks"][0]["message"] == "model says yes: the counter reads 0."
    assert "model says no: it reads 0, not 7." in steps[2]["message"]
    asked = [json.loads(line) for line in (tmp_path / "run" / "check_2" / "trajectory.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in asked] == ["ask"] and (tmp_path / "run" / "check_2" / "query_001.png").is_file()


def test_expect_checks_need_a_model_before_anything_starts(tmp_path):
    (tmp_path / "rows.csv").write_text("a\n1\n")
    flow = parse_workflow("steps:\n  - sleep: 0\n  - foreach: rows.csv\n    steps:\n      - check: {expect: it is saved}\n",
                          "f.yaml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"step 2\.1 has an expect check, which asks a model: give one"):
        run_workflow(flow, tmp_path / "run", base_dir=tmp_path)
    assert not (tmp_path / "run").exists()


@needs_mousepad
def test_a_dialog_with_the_focus_gets_no_typing_and_old_outputs_fail(tmp_path):
    """Save As opens a dialog that takes the focus: a `type` step guarded by `window:` fails and types nothing.
    An output left by an earlier run fails `modified_during_run`; the file this run wrote passes by default."""
    import os

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.txt").write_text("from last week\n")
    stamp = (out / "report.txt").stat()
    os.utime(out / "report.txt", (stamp.st_atime - 3600, stamp.st_mtime - 3600))
    text = (
        "name: guarded\n"
        "desktop: {size: 1024x700, apps: ['mousepad out/notes.txt'], shares: [out]}\n"
        "steps:\n"
        "  - wait_for_window: notes.txt\n"
        "  - type: 'first line'\n"
        "    window: notes.txt\n"
        "  - key: ctrl+s\n"
        "    window: notes.txt\n"
        "  - wait_for_window: notes.txt - Mousepad\n"
        "  - check:\n"
        "      - {file: out/notes.txt, contains: first line}\n"
        "      - {file: out/report.txt, contains: last week}\n"
        "  - key: ctrl+shift+s\n"
        "  - wait_for_window: Save As\n"
        "  - type: ' second line'\n"
        "    window: notes.txt\n"
    )
    flow = parse_workflow(text, "guarded.yaml", base_dir=tmp_path)
    result = run_workflow(flow, tmp_path / "run", base_dir=tmp_path)
    assert [s.status for s in result.steps] == ["passed"] * 7 + ["failed"], [(s.label, s.message) for s in result.steps]
    guard = result.steps[-1]
    assert guard.message.startswith("not sent: the focused window is 'Save As', not one titled 'notes.txt'")
    assert (out / "notes.txt").read_text().rstrip("\n") == "first line"  # nothing typed anywhere after

    stale = parse_workflow("steps:\n  - check:\n      - {file: out/report.txt, contains: last week, modified_during_run: true}\n"
                           "      - {file: out/notes.txt, exists: true}\n", "stale.yaml", base_dir=tmp_path)
    result = run_workflow(stale, tmp_path / "run2", base_dir=tmp_path)
    assert not result.ok
    assert result.steps[0].checks[0]["message"].startswith(f"{out / 'report.txt'} was not written during this run")
    assert result.steps[0].checks[1]["passed"]  # it existed before this run: no default
def _evidence_of(step, run_dir):
    """The failure files a step names: each exists, is in its message, and its screenshot is a PNG of the desktop."""
    from PIL import Image

    assert step.evidence, step
    for name in step.evidence.values():
        assert (run_dir / name).is_file() and str(run_dir / name) in step.message, (name, step.message)
    assert step.screenshot == step.evidence["screenshot"]
    with Image.open(run_dir / step.screenshot) as img:
        return img.size


def test_a_failed_wait_for_window_lists_the_windows_and_leaves_the_screen(tmp_path):
    text = ("desktop: {size: 480x320, apps: ['xterm -T \"Probe Term\" -geometry 20x4+0+0']}\n"
            "steps:\n  - wait_for_window: probe term\n    timeout: 0.5\n")
    result = run_workflow(parse_workflow(text, "f.yaml", base_dir=tmp_path), tmp_path / "run", base_dir=tmp_path)
    step = result.steps[0]
    assert step.status == "failed" and not result.ok
    assert "no window titled 'probe term' within 0.5 s; windows: 'Probe Term'" in step.message
    assert "ignore_case: true" in step.message
    assert _evidence_of(step, tmp_path / "run") == (480, 320)
    report = (tmp_path / "run" / "report.html").read_text()
    assert "step 1 (wait_for_window: probe term) failed: no window titled" in report  # the header names it
    assert 'alt="screen when the step failed"' in report and "step_1_failed.png" in report


def test_ignore_case_matches_and_a_failed_check_step_keeps_the_frame_it_saw(tmp_path):
    text = ("desktop: {size: 480x320, apps: ['xterm -T \"Probe Term\" -geometry 20x4+0+0']}\n"
            "steps:\n  - wait_for_window: probe TERM\n    ignore_case: true\n    timeout: 20\n    quiet: 0\n"
            "  - check: [{window_title: Probe}, {window_title: Absent}]\n")
    result = run_workflow(parse_workflow(text, "f.yaml", base_dir=tmp_path), tmp_path / "run", base_dir=tmp_path)
    assert [s.status for s in result.steps] == ["passed", "failed"]
    assert _evidence_of(result.steps[1], tmp_path / "run") == (480, 320)
    assert result.steps[1].evidence == {"screenshot": "step_2_failed.png"}


@needs_mousepad
def test_a_failed_click_text_saves_the_frame_it_read_and_the_text(tmp_path):
    pytest.importorskip("rapidocr")
    text = ("desktop: {size: 640x400, apps: [mousepad]}\n"
            "secrets: [WF_SHOWN]\n"
            "steps:\n  - wait_for_window: Mousepad\n"
            "  - click_text: no such words here\n    region: [0, 20, 300, 45]\n    timeout: 0\n")
    result = run_workflow(parse_workflow(text, "f.yaml", base_dir=tmp_path), tmp_path / "run", base_dir=tmp_path,
                          env={"WF_SHOWN": "Search"})  # a secret that happens to be on screen
    step = result.steps[1]
    assert step.status == "failed" and "did not appear" in step.message
    assert _evidence_of(step, tmp_path / "run") == (640, 400)
    ocr = (tmp_path / "run" / step.evidence["ocr_text"]).read_text()
    assert "***WF_SHOWN***" in ocr and "Search" not in ocr and "[" in ocr  # the lines OCR read, boxes, redacted
    assert "step_2_failed.png" in (tmp_path / "run" / "report.html").read_text()


WHEEL_APP = """
import sys, tkinter
out = open(sys.argv[1], "a", buffering=1)
root = tkinter.Tk()
root.title("wheel probe")
root.geometry(f"{root.winfo_screenwidth()}x{root.winfo_screenheight()}+0+0")
def log(what, event):
    out.write(f"{what} {event.x_root} {event.y_root}\\n")
root.bind("<Button-4>", lambda e: log("up", e))
root.bind("<Button-5>", lambda e: log("down", e))
root.bind("<MouseWheel>", lambda e: log("up" if e.delta > 0 else "down", e))
root.mainloop()
"""


def test_a_scroll_step_turns_the_wheel_over_its_point(tmp_path, monkeypatch):
    """`scroll: [x, y]` in thousandths, a direction and notches: what the app gets, where it gets it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    (tmp_path / "wheel.py").write_text(WHEEL_APP)
    (tmp_path / "flow.yaml").write_text(
        "desktop: {size: 800x600, apps: ['python3 wheel.py work/wheel.txt'], shares: [work]}\n"
        "steps:\n"
        "  - wait_for_window: wheel probe\n"
        "  - scroll: [500, 250]\n"
        "    amount: 3\n"
        "  - scroll: [250, 500]\n"
        "    direction: up\n"
        "    amount: 1\n"
        "  - check: {file: work/wheel.txt, contains: 'up 200 300'}\n")  # file checks read again until they hold
    result = runner.invoke(app, ["workflow", "run", "flow.yaml", "--out", "run"])
    assert result.exit_code == 0, result.output
    got = (tmp_path / "work" / "wheel.txt").read_text().splitlines()
    assert got == ["down 400 150"] * 3 + ["up 200 300"], got
