"""``--isolation none`` protects nothing, so it is refused while an API key or a secret is held (issue 26).

An app without bubblewrap is an ordinary process of the same user: the
first test shows it reading the API key from deskpilot's own
``/proc/PID/environ`` (why the refusal exists); the others show every door
refusing ``none`` with a key or a secret unless the user consents with
``--unsafe-no-isolation`` (or ``unsafe_no_isolation = true``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deskpilot.sandbox import Sandbox

KEY = "sk-test-7f3a9c-do-not-leak"
DONE = json.dumps(["Done.\n<|begin_of_box|>DONE()<|end_of_box|>\nMemory:\n[]"])

HUNT = textwrap.dedent("""
    import os, sys
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if sys.argv[1].encode() in open(f"/proc/{pid}/environ", "rb").read():
                    found.append(pid)
            except OSError:
                pass
    print("found" if found else "not found")
""")


def _cli(*args: object, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DESKPILOT_API_KEY", "OPENAI_API_KEY")}
    return subprocess.run([sys.executable, "-m", "deskpilot.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=180, cwd=cwd, env={**clean, "PYTHONPATH": os.pathsep.join(sys.path), **env})


@pytest.mark.skipif(os.geteuid() != 0, reason="as another user /proc/PID/environ of root is closed anyway")
def test_an_unisolated_app_reads_the_owners_environment(monkeypatch) -> None:
    """The attack behind the refusal: what `none` means, shown, so the README's warning stays true."""
    monkeypatch.setenv("DESKPILOT_API_KEY", KEY)  # this process's environment, as `DESKPILOT_API_KEY=... deskpilot`
    # the process environment the kernel shows is the one at exec: a child started with the key stands for deskpilot
    owner = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        for mode in ("none", "bwrap"):
            with Sandbox((200, 200), isolation=mode, window_manager=False) as sb:
                app = sb.launch(["/usr/bin/python3", "-c", HUNT, KEY])
                assert app.wait(30) == 0, app.stderr_path.read_text()
                said = app.stdout_path.read_text().strip()
            assert said == ("found" if mode == "none" else "not found"), (mode, said)
    finally:
        owner.communicate(b"")


def test_run_refuses_none_while_a_key_is_held_unless_consented(tmp_path: Path) -> None:
    (tmp_path / "replies.json").write_text(DONE)
    base = ("run", "nothing", "--isolation", "none", "--script", "replies.json", "--size", "320x240", "--quiet")
    refused = _cli(*base, "--out", "run1", env={"DESKPILOT_API_KEY": KEY}, cwd=tmp_path)
    assert refused.returncode == 2 and "--unsafe-no-isolation" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert not (tmp_path / "run1").exists()
    secret = _cli(*base, "--out", "run2", "--secret", "PW", env={"PW": "hunter2"}, cwd=tmp_path)
    assert secret.returncode == 2 and "able to read secrets" in secret.stderr, secret.stderr
    consented = _cli(*base, "--out", "run3", "--unsafe-no-isolation", env={"DESKPILOT_API_KEY": KEY}, cwd=tmp_path)
    assert consented.returncode == 0, consented.stderr
    plain = _cli(*base, "--out", "run4", env={}, cwd=tmp_path)  # nothing to steal: none is allowed
    assert plain.returncode == 0, plain.stderr


def test_eval_and_workflow_refuse_none_with_a_secret(tmp_path: Path) -> None:
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "s", "tasks": [{"id": "t", "task": "x", "script": json.loads(DONE),
                                                         "desktop": {"size": "320x240", "isolation": "none"}}]}))
    proc = _cli("eval", suite, "--out", "out", "--quiet", env={"DESKPILOT_API_KEY": KEY}, cwd=tmp_path)
    assert proc.returncode == 2 and "--unsafe-no-isolation" in proc.stderr, proc.stderr
    flow = tmp_path / "flow.yaml"
    flow.write_text("desktop: {size: 320x240, isolation: none}\nsecrets: [PW]\nsteps:\n  - key: a\n")
    proc = _cli("workflow", "run", flow, "--out", "wf", env={"PW": "hunter2"}, cwd=tmp_path)
    assert proc.returncode != 0 and "--unsafe-no-isolation" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    flow.write_text("desktop: {size: 320x240, isolation: none, unsafe_no_isolation: true}\nsecrets: [PW]\n"
                    "steps:\n  - key: a\n")
    proc = _cli("workflow", "run", flow, "--out", "wf2", env={"PW": "hunter2"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
