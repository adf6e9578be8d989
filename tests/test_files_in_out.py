"""Files in and out of the sandbox, as a new user tries them: a real editor (mousepad) in a real sandbox.

Each of the three defects of issue 11 has a test here that failed before the fix:
an existing file in a shared folder opened read-only, a relative path to a
file not yet written was lost in the sandbox's HOME, and a start-up error left
an empty run folder behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskpilot.agent.desk.apps import parse_command, plan_binds
from deskpilot.cli import app
from deskpilot.errors import UsageError
from deskpilot.sandbox import Bind, Sandbox

runner = CliRunner()
needs_mousepad = pytest.mark.skipif(shutil.which("mousepad") is None, reason="mousepad is not installed")


def box(call: str) -> str:
    return f"I edit the file.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


EDIT_AND_SAVE = [
    box("key(keys='ctrl+end')"),
    box("type(content='written in the sandbox')"),
    box("key(keys='ctrl+s')"),
    box("WAIT()"),
    box("DONE()"),
]


def run_cli(tmp_path: Path, app_command: str, *extra: str):
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(EDIT_AND_SAVE))
    return runner.invoke(app, ["run", "edit and save", "--app", app_command, "--script", str(script),
                               "--size", "1024x700", "--out", str(tmp_path / "run"), "--quiet", *extra])


@needs_mousepad
def test_an_existing_file_in_a_share_is_edited_and_saved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("first line\n")
    result = run_cli(tmp_path, "mousepad work/notes.txt", "--share", "work")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work" / "notes.txt").read_text().rstrip("\n") == "first line\nwritten in the sandbox"


@needs_mousepad
def test_a_relative_path_to_a_new_file_lands_in_its_share(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    result = run_cli(tmp_path, "mousepad work/new.txt", "--share", "work")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work" / "new.txt").read_text().rstrip("\n") == "written in the sandbox"


def test_a_start_up_error_leaves_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([box("DONE()")]))
    out = tmp_path / "runs" / "first"
    result = runner.invoke(app, ["run", "x", "--app", "false", "--script", str(script), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "exited with code 1 before showing a window" in result.output
    assert not out.exists()
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    result = runner.invoke(app, ["run", "x", "--app", "mousepad outside/new.txt", "--share", "work",
                                 "--script", str(script), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "not in a shared folder" in result.output
    assert not out.exists()


def test_new_file_outside_every_share_is_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    argv, binds = parse_command("mousepad docs/new.txt", cwd=tmp_path)
    assert argv == ["mousepad", str(tmp_path / "docs" / "new.txt")]
    with pytest.raises(UsageError, match=r"not in a shared folder.*--share"):
        plan_binds(binds, shares=[])
    assert plan_binds(binds, shares=[tmp_path / "docs"]) == []


def test_path_rules(tmp_path):
    (tmp_path / "work" / "out").mkdir(parents=True)
    (tmp_path / "in.csv").write_text("a\n")
    (tmp_path / "work" / "letter.odt").write_text("x")
    argv, binds = parse_command("python3 -c pass in.csv work/letter.odt --calc https://x/y 1/2 /usr/share",
                                cwd=tmp_path)
    assert argv == ["python3", "-c", "pass", str(tmp_path / "in.csv"), str(tmp_path / "work" / "letter.odt"),
                    "--calc", "https://x/y", "1/2", "/usr/share"]
    shares = [tmp_path / "work" / "out"]
    planned = plan_binds(binds, shares)
    # the input folder is read-only, the share below it is bound again writable, parents first
    assert planned == [Bind(host=tmp_path), Bind(host=tmp_path / "work"), Bind(host=shares[0], writable=True)]
    assert plan_binds(binds, [tmp_path]) == []  # everything inside a share: the share alone, writable
    with pytest.raises(UsageError, match="not installed"):
        parse_command("no-such-program-x a b")
    with pytest.raises(UsageError, match="cannot read"):
        parse_command("xterm 'unclosed")


def test_binds_really_give_the_promised_access(tmp_path):
    """Inside a real bubblewrap sandbox: the share stays writable under a read-only parent bind."""
    share = tmp_path / "data" / "out"
    share.mkdir(parents=True)
    (tmp_path / "data" / "in.txt").write_text("input")
    _, binds = parse_command(f"cat {tmp_path}/data/in.txt {share}/new.txt")
    with Sandbox((200, 200), binds=[Bind(host=share, writable=True)], window_manager=False) as sb:
        probe = (f"cat {tmp_path}/data/in.txt > {share}/copy.txt; "
                 f"echo no > {tmp_path}/data/forbidden.txt || echo refused > {share}/refused.txt")
        handle = sb.launch(["/bin/sh", "-c", probe], binds=plan_binds(binds, [share]))
        assert handle.wait(timeout=20) == 0
    assert (share / "copy.txt").read_text() == "input"
    assert (share / "refused.txt").read_text() == "refused\n"
    assert not (tmp_path / "data" / "forbidden.txt").exists()
