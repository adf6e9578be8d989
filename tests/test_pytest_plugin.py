"""The pytest plugin, used the way a tester would: the example test file run by pytest in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pytest_form"


def run_pytest(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """pytest on the example, with only the plugins named here (no cross-talk with this session's)."""
    full_env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "pytest", str(EXAMPLE), "-p", "deskpilot.pytest_plugin",
           "-p", "pytest_timeout", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "base"),
           "--junitxml", str(tmp_path / "junit.xml"), "--deskpilot-script", str(EXAMPLE / "replies"), *args]
    return subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=240)


def properties(junit: Path) -> dict[str, dict[str, str]]:
    tree = ET.parse(junit)
    return {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
            for case in tree.iter("testcase")}


def test_plugin_is_registered_as_a_pytest11_entry_point():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {"deskpilot": "deskpilot.pytest_plugin"}


def test_example_passes_on_two_xdist_workers_without_cross_talk(tmp_path):
    proc = run_pytest(tmp_path, "-p", "xdist.plugin", "-n", "2", "-v")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout
    workers = re.findall(r"^\[(gw\d)\] \[\s*\d+%\] PASSED", proc.stdout, re.MULTILINE)
    assert sorted(workers) == ["gw0", "gw1"], proc.stdout  # one test on each worker, at the same time
    saved = {json.loads(p.read_text())["name"] for p in (tmp_path / "base").rglob("share/form.json")}
    assert saved == {"Ada Lovelace", ""}  # each test's desktop wrote only its own form
    props = properties(tmp_path / "junit.xml")["test_fill_and_save"]
    assert props["deskpilot_status"] == "PASSED"
    assert Path(props["deskpilot_report"]).is_file() and Path(props["deskpilot_run"]).is_dir()
    queries = Path(props["deskpilot_run"]).parent / "queries" / "trajectory.jsonl"
    kinds = [json.loads(line)["kind"] for line in queries.read_text().splitlines()]
    assert kinds == ["ask", "locate"]  # pilot.expect and pilot.locate are recorded like any query


def test_example_fails_with_the_run_folder_when_the_app_changes(tmp_path):
    proc = run_pytest(tmp_path, "-k", "fill", env={"FORM_LAYOUT": "changed"})
    assert proc.returncode == 1, proc.stdout[-3000:]
    out = proc.stdout
    assert "CheckFailed: deskpilot run ended FAILED after 6 step(s): 2 of 2 check(s) failed" in out
    assert "form.json does not exist" in out and "text 'Saved.' is visible: 'Saved.' is not on screen" in out
    props = properties(tmp_path / "junit.xml")["test_fill_and_save"]
    assert props["deskpilot_status"] == "FAILED"
    assert f"run folder: {props['deskpilot_run']}" in out and f"report: {props['deskpilot_report']}" in out
    assert f"last screenshot: {props['deskpilot_last_screenshot']}" in out
    assert Path(props["deskpilot_last_screenshot"]).is_file()
    assert "deskpilot runs" in out  # the terminal section with the same paths
    assert "def do(" not in out  # the plugin's own frames are hidden from the traceback


def test_a_pilot_without_a_model_is_a_usage_error_before_any_desktop_starts(tmp_path):
    test = tmp_path / "test_nomodel.py"
    test.write_text("import pytest\n\n@pytest.mark.desktop(size=(640, 480))\n"
                    "def test_it(pilot):\n    pilot.do('anything')\n\n"
                    "def test_ocr_only(pilot):\n    pilot.find_text('x')\n")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    env.pop("DESKPILOT_SCRIPT", None)
    env.pop("DESKPILOT_BASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "deskpilot.pytest_plugin",
                           "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "b")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage-error exit code
    assert proc.stderr.strip() == ("ERROR: test_nomodel.py::test_it: the pilot fixture needs a model: "
                                   "--deskpilot-base-url URL or --deskpilot-script FILE "
                                   "(or DESKPILOT_BASE_URL / DESKPILOT_SCRIPT)")
    assert "Traceback" not in proc.stdout + proc.stderr and "failed" not in proc.stdout
    assert not list((tmp_path / "b").rglob("share"))  # no test ran, no desktop started
    proc = subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "deskpilot.pytest_plugin",
                           "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path), "-k", "ocr_only",
                           "--collect-only"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a test deselected with -k needs no model
    proc = subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "deskpilot.pytest_plugin",
                           "-p", "xdist.plugin", "-n", "1", "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
                           "--basetemp", str(tmp_path / "x"), "-k", "test_it"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "INTERNALERROR" not in proc.stdout, proc.stdout[-2000:]  # a worker cannot stop the session
    assert "ERROR at setup of test_it" in proc.stdout and "usage error: the pilot fixture needs a model" in proc.stdout
    assert "Traceback" not in proc.stdout and not list((tmp_path / "x").rglob("share"))


def test_update_baselines_writes_missing_and_changed_ones_only_when_asked(tmp_path):
    """A tester's loop: no baseline fails; --deskpilot-update-baselines writes it; the next plain run matches it."""
    from PIL import Image

    test = tmp_path / "test_shot.py"
    test.write_text(
        "import os, pytest\n\n"
        "@pytest.mark.desktop(size=(320, 240), apps=['xterm -geometry 30x6+0+0 -bg ' + os.environ['SHOT_BG']])\n"
        "def test_it(pilot):\n"
        "    pilot.check({'screenshot_matches': 'shots/term.png'})\n")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    env.pop("DESKPILOT_UPDATE_BASELINES", None)
    replies = tmp_path / "replies.json"
    replies.write_text("[]")  # no model step is taken: checks only

    def run(bg: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "deskpilot.pytest_plugin",
                               "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path),
                               "--deskpilot-script", str(replies), *args],
                              cwd=tmp_path, env={**env, "SHOT_BG": bg}, capture_output=True, text=True, timeout=120)

    baseline = tmp_path / "shots" / "term.png"
    proc = run("white")
    assert proc.returncode == 1 and "term.png does not exist" in proc.stdout, proc.stdout[-2000:]
    assert not baseline.exists()
    proc = run("white", "--deskpilot-update-baselines")
    assert proc.returncode == 0, proc.stdout[-2000:]
    with Image.open(baseline) as img:
        assert img.size == (320, 240)
        white = img.convert("RGB").getpixel((250, 200))
    written = baseline.read_bytes()
    assert run("white").returncode == 0  # the new baseline matches a plain run
    proc = run("black")
    assert proc.returncode == 1 and "differs from term.png" in proc.stdout, proc.stdout[-2000:]
    named = dict(re.findall(r"^E\s+(screenshot|diff): (\S+)$", proc.stdout, re.MULTILINE))
    assert set(named) == {"screenshot", "diff"}, proc.stdout[-2000:]  # the failure's screen and its diff image
    assert all(Path(p).is_file() for p in named.values())
    assert baseline.read_bytes() == written  # a failing plain run leaves the baseline alone
    assert run("black", "--deskpilot-update-baselines").returncode == 0
    with Image.open(baseline) as img:
        assert img.convert("RGB").getpixel((250, 200)) != white


def test_failures_leave_the_screen_they_saw_named_in_the_message_and_junit_without_deskpilot_frames(tmp_path):
    """A failed expect_text (OCR) and a failed pilot.check save the screen and what was read; tracebacks stay short."""
    pytest.importorskip("rapidocr")
    from PIL import Image

    test = tmp_path / "test_evidence.py"
    test.write_text(
        "import pytest\n\n"
        "APP = ['xterm -T evidence-term -geometry 20x3+0+0']\n\n"
        "@pytest.mark.desktop(size=(320, 240), apps=APP)\n"
        "def test_text(pilot):\n"
        "    pilot.expect_text('words not here', timeout=0, region=(0, 0, 200, 60))\n\n"
        "@pytest.mark.desktop(size=(320, 240), apps=APP)\n"
        "def test_click(pilot):\n"
        "    pilot.click_text('nothing', timeout=0, region=(0, 0, 120, 20))\n\n"
        "@pytest.mark.desktop(size=(320, 240), apps=APP)\n"
        "def test_window(pilot):\n"
        "    pilot.check({'window_title': 'evidence-term'}, {'window_title': 'no such window'})\n")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    env.pop("DESKPILOT_SCRIPT", None)
    env.pop("DESKPILOT_BASE_URL", None)  # neither test calls the model: no model needed
    proc = subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "deskpilot.pytest_plugin",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "b"),
                           "--junitxml", str(tmp_path / "junit.xml"), "--tb=long"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout
    assert proc.returncode == 1 and "3 failed" in out, out[-3000:] + proc.stderr[-2000:]
    props = properties(tmp_path / "junit.xml")
    text, click, window = props["test_text"], props["test_click"], props["test_window"]
    assert set(text) == set(click) == {"deskpilot_failure_screenshot", "deskpilot_failure_ocr_text"}
    assert set(window) == {"deskpilot_failure_screenshot"}
    for path in [*text.values(), *click.values(), *window.values()]:
        assert Path(path).is_file() and f": {path}" in out, path  # saved and named in the failure message
    for shot in (text["deskpilot_failure_screenshot"], window["deskpilot_failure_screenshot"]):
        with Image.open(shot) as img:
            assert img.size == (320, 240)
    assert Path(text["deskpilot_failure_screenshot"]).parent.name == "deskpilot"  # the test's runs folder
    assert Path(window["deskpilot_failure_screenshot"]).parent.name == "checks"  # the folder the message names
    assert "'nothing' did not appear" in out and "'words not here' did not appear" in out and "no window titled 'no such window'" in out
    assert "evidence-te" in Path(text["deskpilot_failure_ocr_text"]).read_text()  # what OCR read there
    assert str(ROOT) not in out, out  # no frame, no source line of deskpilot's own files
    assert "__tracebackhide__" not in out and "raise CheckFailed" not in out


def test_a_desktop_that_cannot_start_is_one_line_in_setup(tmp_path):
    test = tmp_path / "test_badapp.py"
    test.write_text("import pytest\n\n@pytest.mark.desktop(size=(320, 240), apps=['no-such-app-4711'])\n"
                    "def test_it(desktop):\n    pass\n")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "deskpilot.pytest_plugin",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "b")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "1 error" in proc.stdout, proc.stdout[-2000:]
    assert ("ERROR at setup of test_it ___\nthe desktop did not start: app 'no-such-app-4711' is not installed "
            "(not found on PATH)\n") in re.sub(r"_{3,}", "___", proc.stdout)
    assert str(ROOT) not in proc.stdout and "During handling" not in proc.stdout
