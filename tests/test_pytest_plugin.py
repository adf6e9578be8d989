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


def test_a_pilot_without_a_model_says_how_to_give_one(tmp_path):
    test = tmp_path / "test_nomodel.py"
    test.write_text("import pytest\n\n@pytest.mark.desktop(size=(640, 480))\n"
                    "def test_it(pilot):\n    pilot.do('anything')\n")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    env.pop("DESKPILOT_SCRIPT", None)
    env.pop("DESKPILOT_BASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", str(test), "-p", "deskpilot.pytest_plugin",
                           "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "the pilot fixture needs a model: --deskpilot-base-url URL or --deskpilot-script FILE" in proc.stdout


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
    assert baseline.read_bytes() == written  # a failing plain run leaves the baseline alone
    assert run("black", "--deskpilot-update-baselines").returncode == 0
    with Image.open(baseline) as img:
        assert img.convert("RGB").getpixel((250, 200)) != white
