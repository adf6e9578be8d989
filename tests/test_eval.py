"""deskpilot eval end to end: real sandboxes and apps, scripted GLM-4.5V replies, the simulator over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deskpilot.eval.results import pass_at_k
from deskpilot.eval.suite import load_suite
from deskpilot.agent.records.trajectory import load_run

from deskpilot.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deskpilot" / "eval" / "example" / "suite.yaml"
COUNTER = REPO / "deskpilot" / "eval" / "example" / "counter.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def box(call: str, thought: str = "Next step.") -> str:
    return f"{thought}\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def deskpilot(*args, timeout=240, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deskpilot.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV, **kw)


def write_suite(folder: Path, tasks: list[dict], name="suite.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"name": "mini", "tasks": tasks}, indent=2))
    return path


def counter_task(tid: str, presses: int, tags=("tk",)) -> dict:
    script = [box("left_click(start_box='[350,600]')")] * presses + [box("DONE()")]
    return {"id": tid, "task": f"Press Add one {presses} times", "desktop": {"size": "640x400", "apps": [f"python3 {COUNTER}"]},
            "max_steps": 6, "tags": list(tags), "script": script, "checks": [{"window_title": "Counter: 2"}]}


def failed_attempts(out: Path) -> str:
    """Why attempts failed, from results.jsonl: what a failing test must say (--quiet prints nothing)."""
    path = out / "results.jsonl"
    if not path.is_file():
        return f"no {path}"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return "\n".join(f"{r['id']}~{r['attempt']} {r['status']}: {r['reason']} "
                     f"[{'; '.join(c['detail'] for c in r['checks'] if not c['passed'])}] "
                     f"(run folder: {out / r['run_dir'] if r['run_dir'] else 'none'})"
                     for r in lines if not r["passed"]) or "every attempt passed"


def test_bundled_example_suite_passes_with_its_checks(tmp_path):
    out = tmp_path / "eval"
    proc = deskpilot("eval", EXAMPLE, "--parallel", "4", "--out", out, "--quiet")
    assert proc.returncode == 0, f"{proc.stderr}\nfailed attempts:\n{failed_attempts(out)}"
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    suite = load_suite(EXAMPLE)
    assert len(suite.tasks) >= 10 and sorted(r["id"] for r in lines) == sorted(t.id for t in suite.tasks)
    assert all(r["passed"] and r["checks_passed"] == r["checks_total"] >= 1 for r in lines)
    assert {"tk", "xterm", "gtk", "office"} <= {tag for r in lines for tag in r["tags"]}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success_rate"] == 1.0 and summary["attempts"] == len(suite.tasks)
    assert summary["by_tag"]["xterm"]["attempts"] == 3 and summary["step_latency_ms"]["p50"] > 0
    index = (out / "index.html").read_text()
    for r in lines:
        assert f'href="{r["run_dir"]}/report.html"' in index
        run = load_run(out / r["run_dir"])
        assert run.end is not None and run.end.status.value == "PASSED" and len(run.steps) == r["steps"]
        assert r["status"] == "PASSED"
    # the apps' output stays with each run; the suite's own data folder is untouched
    assert "Second line" in (out / "runs" / "mousepad-append~1" / "shares" / "data" / "notes.txt").read_text()
    assert (EXAMPLE.parent / "data" / "notes.txt").read_text() == "First line\n"
    assert not (EXAMPLE.parent / "data" / "hello.txt").exists()
    assert '"Total",455,485,510' in (out / "runs" / "calc-totals~1" / "shares" / "data" / "sales.csv").read_text()
    assert "Total" not in (EXAMPLE.parent / "data" / "sales.csv").read_text()


def test_failed_checks_tags_pass_at_k_and_resume(tmp_path):
    suite = write_suite(tmp_path / "s", [counter_task("two", 2, ("tk", "good")), counter_task("one", 1, ("tk", "bad"))])
    out = tmp_path / "out"
    proc = deskpilot("eval", suite, "--parallel", "3", "--repeat", "2", "--out", out)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL one~1" in proc.stderr and "no window titled 'Counter: 2'" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attempts"] == 4 and summary["passed"] == 2 and summary["success_rate"] == 0.5
    assert summary["by_tag"]["good"]["success_rate"] == 1.0 and summary["by_tag"]["bad"]["success_rate"] == 0.0
    assert summary["pass@1"] == 0.5 and summary["pass@2"] == 0.5 and summary["mean_steps"] == 2.5
    results = (out / "results.jsonl").read_text()
    again = deskpilot("eval", suite, "--out", out)
    assert again.returncode == 2 and "already holds an evaluation" in again.stderr and "Traceback" not in again.stderr
    resumed = deskpilot("eval", suite, "--out", out, "--resume", "--repeat", "3")
    assert resumed.returncode == 1, resumed.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert (out / "results.jsonl").read_text().startswith(results) and len(lines) == 6  # only the 3rd round ran
    assert {json.loads(x)["attempt"] for x in lines[4:]} == {3}


def test_pass_at_k_estimator():
    assert pass_at_k(5, 0, 1) == 0.0 and pass_at_k(5, 5, 3) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 2) == pytest.approx(0.5)


@pytest.mark.parametrize("text, where", [
    ("tasks:\n  - id: a\n    task: t\n    desktop: {size: 12x}\n", ":4: tasks[0].desktop.size: a screen size"),
    ("tasks:\n  - id: a\n    task: t\n  - id: b\n    task: t\n    colour: red\n", ":6: tasks[1].colour: unknown field"),
    ("tasks:\n  - id: a\n    task: t\n    checks:\n      - {file: x}\n", ":5: tasks[0].checks[0]: "),
    ("tasks:\n  - id: a\n    task: t\n    checks:\n      - {smell: x}\n", ":5: tasks[0].checks[0]: "),
    ("tasks:\n  - id: a\n    task: t\n  - id: a\n    task: u\n", ": suite: task id 'a' is used twice"),
    ("tasks:\n  - id: a b\n    task: t\n", ":2: tasks[0].id: an id is"),
    ("tasks:\n  - id: a\n    task: t\n    desktop:\n      apps: [xterm, no-such-program-x]\n",
     ":5: tasks[0].desktop.apps[1]: app 'no-such-program-x' is not installed"),
    ("tasks:\n  - id: a\n    task: t\n    desktop: {shares: [nothere]}\n", ":4: tasks[0].desktop.shares[0]:"),
    ("tasks:\n  - id: a\n   task: t\n", ":3: not valid YAML"),
    ("tasks: []\n", ":1: tasks: List should have at least 1 item"),
    ("tasks:\n  - id: a\n    task: t\n    task: u\n", ":4: 'task' is given twice"),
    ("tasks:\n  - id: a\n    task: t\n    ready: {window: W, quiet: -1}\n", ":4: tasks[0].ready.quiet:"),
])
def test_suite_errors_name_the_line(tmp_path, text, where):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    message = str(err.value)
    assert message.startswith(str(path)) and where in message and "\n" not in message


def test_relative_paths_resolve_against_the_suite_folder(tmp_path, monkeypatch):
    folder = tmp_path / "suites"
    (folder / "data").mkdir(parents=True)
    (folder / "app.py").write_text("print('hi')\n")
    (folder / "replies.json").write_text(json.dumps([box("DONE()")]))
    write_suite(folder, [{"id": "t", "task": "x", "script": "replies.json",
                                 "desktop": {"apps": ["python3 app.py data/new.txt --flag"], "shares": ["data"]},
                                 "checks": [{"file": "data/new.txt", "exists": True}]}])
    monkeypatch.chdir(tmp_path)
    task = load_suite(Path("suites/suite.json")).tasks[0]
    assert task.desktop.apps == [f"python3 {folder}/app.py {folder}/data/new.txt --flag"]
    assert task.desktop.shares == [folder / "data"] and task.checks[0]["file"] == str(folder / "data" / "new.txt")
    assert task.replies() == [box("DONE()")]


def test_live_model_through_the_simulator_shares_one_backend_with_a_call_limit(tmp_path):
    suite = write_suite(tmp_path / "s", [counter_task(f"t{n}", 2) for n in range(4)])
    sim = subprocess.Popen([sys.executable, str(REPO / "bench" / "glm_simulator.py"), "--suite", str(suite),
                            "--delay", "0.4"], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        url = sim.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        proc = deskpilot("eval", suite, "--parallel", "4", "--model-concurrency", "2", "--out", tmp_path / "out",
                         "--base-url", url, "--no-thinking", "--quiet")
        assert proc.returncode == 0, proc.stderr
        import urllib.request

        stats = json.loads(urllib.request.urlopen(url.removesuffix("/v1") + "/stats").read())
    finally:
        sim.kill()
        sim.wait()
    assert stats["requests"] == 12 and stats["max_in_flight"] == 2
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["passed"] == 4 and summary["tokens"]["prompt"] > 4 * 3 * 1200
    tokens = summary["tokens"]  # ours, exact: 12 steps, each with at least its 640x400 screenshot (322 + 2)
    assert tokens["image"] >= 12 * 324 and tokens["image_unbudgeted"] >= tokens["image"]
    assert 0 < tokens["reusable_prefix_share"] < 1 and tokens["prompt_est"] > tokens["image"]
    assert summary["model_s"] >= 12 * 0.4 * 0.9


def test_ctrl_c_stops_cleanly_with_the_summary_so_far_and_resume_finishes(tmp_path):
    slow = {**counter_task("slow", 2), "script": [box("WAIT()"), box("DONE()")], "checks": []}
    suite = write_suite(tmp_path / "s", [counter_task("fast", 2), slow, {**counter_task("later", 2)}])
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--parallel", "1",
                             "--out", str(out), "--quiet"], env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "runs" / "slow~1" / "step_001.png").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["attempts"] == 1 and summary["planned"] == 3
    assert load_run(out / "runs" / "slow~1").end.status.value == "STOPPED"
    done = deskpilot("eval", suite, "--out", out, "--resume", "--quiet")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attempts"] == 3 and not summary["interrupted"]
    assert (out / "runs" / "slow~1.interrupted1" / "trajectory.jsonl").is_file()  # kept aside, not lost


@pytest.mark.parametrize("kind", ["folder", "fifo", "binary", "missing"])
def test_suite_and_workflow_files_that_cannot_be_read_are_one_line(tmp_path, kind):
    from deskpilot.workflow.loader import WorkflowError, load_workflow
    from deskpilot.errors import ConfigError

    path = tmp_path / "suite.yaml"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would block forever
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00tasks")
    why = {"folder": "is not a regular file", "fifo": "is not a regular file", "binary": "is not UTF-8 text",
           "missing": "does not exist"}[kind]
    with pytest.raises(ConfigError) as suite_err:
        load_suite(path)
    assert str(suite_err.value) == f"suite file {path} {why}"
    with pytest.raises(WorkflowError) as flow_err:
        load_workflow(path)
    assert str(flow_err.value) == f"workflow file {path} {why}"


def test_what_an_app_leaves_in_a_share_is_kept_safely(tmp_path):
    """A FIFO (copying it would block), a link to a host file (kept as a link, never its content), a file."""
    folder = tmp_path / "s"
    (folder / "data").mkdir(parents=True)
    (tmp_path / "host.txt").write_text("host-only\n")
    (folder / "plant.sh").write_text(f'mkfifo "$1/pipe" && ln -s {tmp_path / "host.txt"} "$1/link.txt" && '
                                     'echo made > "$1/made.txt" && exec xterm -T planted\n')
    task = {"id": "plant", "task": "Nothing to do", "desktop": {"size": "640x400", "apps": ["sh plant.sh data"],
                                                                 "shares": ["data"]},
            "max_steps": 2, "script": [box("DONE()")], "checks": [{"file": "data/made.txt", "contains": "made"}]}
    suite = write_suite(folder, [task])
    out = tmp_path / "out"
    proc = deskpilot("eval", suite, "--out", out, "--quiet", timeout=120)
    assert proc.returncode == 0, proc.stderr
    kept = out / "runs" / "plant~1" / "shares" / "data"
    assert (kept / "made.txt").read_text() == "made\n"
    assert (kept / "link.txt").is_symlink() and not (kept / "pipe").exists()


def test_eval_takes_the_dialect_and_keeps_secrets_out_of_results_and_runs(tmp_path):
    secret = "pw-7Yq2-secret"
    task = {"id": "typing", "task": "Type the password", "desktop": {"size": "640x400", "apps": ["xterm -T term"]},
            "max_steps": 3, "script": [box(f"type(content='{secret}')", f"I type {secret}."), box("DONE()")],
            "checks": [{"window_title": "term"}]}
    suite = write_suite(tmp_path / "s", [task])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--out", str(out),
                           "--quiet", "--secret", "APP_PW", "--dialect", "glm-4.1v"], capture_output=True, text=True,
                          timeout=120, env={**ENV, "APP_PW": secret})
    assert proc.returncode == 0, proc.stderr
    run = out / json.loads((out / "results.jsonl").read_text().splitlines()[0])["run_dir"]
    assert json.loads((run / "settings.json").read_text())["dialect"] == "glm-4.1v"
    files = [out / "results.jsonl", out / "summary.json", run / "trajectory.jsonl", run / "settings.json"]
    assert not [f.name for f in files if secret in f.read_text()]
    assert "***APP_PW***" in (run / "trajectory.jsonl").read_text()


def test_failed_attempts_are_named_in_the_failure_message(tmp_path):
    suite = write_suite(tmp_path / "s", [counter_task("one", 1)])
    out = tmp_path / "out"
    proc = deskpilot("eval", suite, "--parallel", "1", "--out", out, "--quiet")
    assert proc.returncode == 1 and proc.stderr == ""  # --quiet: nothing to go on but results.jsonl
    message = failed_attempts(out)
    assert message.startswith("one~1 FAILED: 1 of 1 check(s) failed") and "Counter: 2" in message
    assert f"run folder: {out / 'runs' / 'one~1'}" in message


def test_a_desktop_that_fails_to_start_is_retried_and_its_logs_kept(tmp_path, monkeypatch):
    """The window manager of the first two desks exits during startup (fault injection, see test_pool): the
    attempt runs on the third, passes, and its run folder keeps both failed desks' logs; summary and index count them."""
    from typer.testing import CliRunner

    from deskpilot.cli import app
    from test_pool import _BrokenWindowManager

    _BrokenWindowManager(monkeypatch, 2)
    suite = write_suite(tmp_path / "s", [counter_task("two", 2)])
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["eval", str(suite), "--parallel", "1", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, f"{res.output}\n{failed_attempts(out)}"
    result = json.loads((out / "results.jsonl").read_text())
    assert result["passed"] and result["status"] == "PASSED" and result["desk_start_failures"] == 2
    assert all(e.startswith("openbox exited during startup: /bin/ls: unrecognized option") for e in result["desk_start_errors"])
    logs = out / result["run_dir"] / "desk-start-failures"
    kept = {p.name for p in logs.iterdir() if p.name.startswith("1-")}  # plus the accessibility bus's log
    assert {"1-00-ls.err", "1-00-ls.out", "1-reason.txt", "1-xvfb.log"} <= kept, kept
    assert "unrecognized option '--sm-disable'" in (logs / "2-00-ls.err").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["desk_start_failures"] == {"count": 2, "attempts": ["two~1"]}
    assert summary["by_status"] == {"PASSED": 1}
    assert "desktops that failed to start (retried on a fresh one): 2 (two~1)" in (out / "index.html").read_text()


def test_a_desktop_that_never_starts_is_an_error_that_keeps_the_logs(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from deskpilot.cli import app
    from test_pool import _BrokenWindowManager

    _BrokenWindowManager(monkeypatch, 100)
    suite = write_suite(tmp_path / "s", [counter_task("two", 2)])
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["eval", str(suite), "--parallel", "1", "--out", str(out), "--quiet"])
    assert res.exit_code == 1, res.output
    result = json.loads((out / "results.jsonl").read_text())
    assert result["status"] == "ERROR" and result["desk_start_failures"] == 3
    assert result["reason"].startswith("the desktop failed to start 3 time(s) (logs in desk-start-failures/): "
                                       "openbox exited during startup")
    assert (out / result["run_dir"] / "desk-start-failures" / "3-00-ls.err").is_file()
