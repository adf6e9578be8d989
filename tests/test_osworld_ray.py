"""OSWorld task files through `deskpilot eval --ray` on a real local Ray cluster (the fixture of test_eval_ray):
the plan travels to the workers as JSON, skipped tasks never leave the driver, verdicts match a local run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="the [ray] extra is not installed")
pytest.importorskip("docx")

from test_eval_ray import cluster  # noqa: F401  (the fixture: a head node and a worker node)
from test_osworld import osworld_checkout


def test_osworld_tasks_on_a_ray_cluster(cluster, tmp_path):
    address, env, _ = cluster
    index, cache, scripts = osworld_checkout(tmp_path / "osworld", libreoffice=False)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "deskpilot.cli", "eval", str(index), "--ray", address,
                           "--osworld-files", str(cache), "--scripts", str(scripts), "--parallel", "3",
                           "--out", str(out), "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    got = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert {t: (r["status"], r["passed"]) for t, r in got.items()} == {
        "calc-wrong": ("FAILED", False), "writer-same": ("PASSED", True), "infeasible-fail": ("PASSED", True),
        "infeasible-done": ("FAILED", False), "shell-made": ("PASSED", True), "needs-chrome": ("SKIPPED", False), "needs-metric": ("SKIPPED", False)}
    assert got["needs-chrome"]["worker"] == "" and got["writer-same"]["worker"]  # skipped: never sent to a worker
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == 2 and summary["passed"] == 3 and summary["osworld"]["platform"] == "Ubuntu"
    assert (out / got["writer-same"]["run_dir"] / "shares" / "home" / "Desktop" / "letter.docx").is_file()
