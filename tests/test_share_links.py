"""Links an app plants in a share never become binds, reads or writes on the host (issue 26).

The planter is a real app in a real sealed sandbox (uid 65534 as root): it
creates ``share/shadowlink -> /etc/shadow`` and ``share/vaultlink -> VAULT``
(a root-only 0700 folder holding a 0600 file). Later launches (library,
workflow ``launch:`` steps, ``foreach`` rows) name those links, and a probe
app reports what it could read. Nothing of the host's root-only files may
reach the app or anything deskpilot writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deskpilot.agent.desk.apps import parse_command, plan_binds, resolve_named
from deskpilot.errors import UsageError
from deskpilot.sandbox import Bind

AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="the sealed sandbox (uid 65534, idmapped shares) is root's")
SECRET = "vault-secret-5521"

PLANT = textwrap.dedent("""
    import os, sys
    share = sys.argv[1]
    with open(os.path.join(os.path.dirname(__file__), "target")) as f:  # not an argument: nothing to bind
        vault = f.read().strip()
    for name in ("shadowlink", "vaultlink", "secretlink"):  # what the user put there is moved aside
        if os.path.lexists(os.path.join(share, name)):
            os.rename(os.path.join(share, name), os.path.join(share, name + ".before"))
    os.symlink("/etc/shadow", os.path.join(share, "shadowlink"))
    os.symlink(vault, os.path.join(share, "vaultlink"))
    os.symlink(os.path.join(vault, "secret.txt"), os.path.join(share, "secretlink"))
    if "--window" in sys.argv:
        import tkinter
        root = tkinter.Tk()
        root.title("planted")
        root.mainloop()
""")

PROBE = textwrap.dedent("""
    import json, sys
    seen = {}
    for path in [a for a in sys.argv[2:] if a != "--window"]:
        try:
            seen[path] = open(path, errors="replace").read(200)
        except OSError as exc:
            seen[path] = exc.__class__.__name__
    with open(sys.argv[1], "w") as f:
        json.dump(seen, f)
    if "--window" in sys.argv:
        import tkinter
        root = tkinter.Tk()
        root.title("probed " + sys.argv[1].rsplit("/", 1)[-1])
        root.mainloop()
""")


@pytest.fixture
def land(tmp_path: Path) -> dict[str, Path]:
    """A share, a tools folder with the planter and the probe, and a root-only vault."""
    share, tools, vault = tmp_path / "work", tmp_path / "tools", tmp_path / "vault"
    for folder in (share, tools, vault):
        folder.mkdir()
    (tools / "plant.py").write_text(PLANT)
    (tools / "probe.py").write_text(PROBE)
    (tools / "target").write_text(str(vault))
    for name, text in (("secret.txt", SECRET + "\n"), ("rows.csv", f"path\n{SECRET}\n")):
        (vault / name).write_text(text)
        (vault / name).chmod(0o600)
    vault.chmod(0o700)
    return {"share": share, "tools": tools, "vault": vault, "root": tmp_path}


def test_resolve_named_stops_following_links_at_a_share(tmp_path: Path) -> None:
    share, elsewhere = tmp_path / "share", tmp_path / "elsewhere"
    share.mkdir()
    elsewhere.mkdir()
    (share / "shadowlink").symlink_to("/etc/shadow")
    (share / "sub").symlink_to("/etc")
    (tmp_path / "to-share").symlink_to(share)  # the user's own link above the share: followed
    (tmp_path / "to-elsewhere").symlink_to(elsewhere)
    assert resolve_named(share / "shadowlink", [share]) == (share / "shadowlink", share)
    assert resolve_named(share / "sub" / "passwd", [share]) == (share / "sub" / "passwd", share)
    assert resolve_named(tmp_path / "to-share" / "shadowlink", [share]) == (share / "shadowlink", share)
    assert resolve_named(tmp_path / "to-elsewhere" / "x", [share]) == (elsewhere / "x", None)
    assert resolve_named(share / "shadowlink", []) == (Path("/etc/shadow"), None)  # no shares: plain realpath
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(UsageError, match="too many levels"):
        resolve_named(tmp_path / "loop" / "x", [share])


def test_a_planted_link_in_an_app_command_binds_nothing(tmp_path: Path) -> None:
    share = tmp_path / "work"
    (share / "deep").mkdir(parents=True)
    (share / "shadowlink").symlink_to("/etc/shadow")
    (share / "deep" / "up").symlink_to(tmp_path)  # a folder link: a new file "through" it stays in the share
    (tmp_path / "vault.txt").write_text("x")
    argv, binds = parse_command(f"cat {share}/shadowlink work/deep/up/new.txt", cwd=tmp_path, shares=[share])
    assert argv == ["cat", str(share / "shadowlink"), str(share / "deep" / "up" / "new.txt")]
    assert binds == [] and plan_binds(binds, [share]) == []
    # an entry made without the shares (an old caller) is resolved again against them
    (share / "hostlink").symlink_to(tmp_path / "vault.txt")
    _, old = parse_command(f"cat {share}/hostlink", cwd=tmp_path)
    assert old and plan_binds(old, [share]) == []
    # from data: a path outside every share is refused, one inside is fine
    with pytest.raises(UsageError, match="outside every shared folder, and it came from data"):
        parse_command(f"cat {tmp_path}/elsewhere.txt", cwd=tmp_path, shares=[share], from_data=True)
    (tmp_path / "elsewhere.txt").write_text("x")
    with pytest.raises(UsageError, match="came from data"):
        parse_command(f"cat {tmp_path}/elsewhere.txt", cwd=tmp_path, shares=[share], from_data=True)
    assert parse_command("cat work/shadowlink", cwd=tmp_path, shares=[share], from_data=True)[1] == []
    # only the arguments that hold data (a workflow's row values) are held to it
    _, mixed = parse_command(f"cat {tmp_path}/elsewhere.txt work/x", cwd=tmp_path, shares=[share], from_data={2})
    assert [b["named"] for b in mixed] == [str(tmp_path / "elsewhere.txt")]
    with pytest.raises(UsageError, match="came from data"):
        parse_command(f"cat work/x {tmp_path}/elsewhere.txt", cwd=tmp_path, shares=[share], from_data={2})
    # the user's own path outside the shares is still shown read-only, as before
    assert plan_binds(parse_command(f"cat {tmp_path}/elsewhere.txt", shares=[share])[1], [share]) == [
        Bind(host=tmp_path), Bind(host=share, writable=True)]


@needs_root
def test_a_later_launch_naming_planted_links_reads_nothing_of_the_host(land) -> None:
    from deskpilot.agent.desk.session import Session

    share, tools, vault = land["share"], land["tools"], land["vault"]
    with Session(size=(320, 240), shares=[share]) as desk:
        planter = desk.launch(f"/usr/bin/python3 {tools}/plant.py {share}", wait=False)
        assert planter.wait(20) == 0, planter.stderr_path.read_text()
        assert (share / "shadowlink").is_symlink() and os.readlink(share / "secretlink") == str(vault / "secret.txt")
        probe = desk.launch(f"/usr/bin/python3 {tools}/probe.py {share}/seen.json {share}/shadowlink "
                            f"{share}/vaultlink/secret.txt {share}/secretlink", wait=False)
        assert probe.wait(20) == 0, probe.stderr_path.read_text()
        for app in desk.spec.apps:
            assert not any(str(vault) in b["host"] or b["host"].startswith("/etc") for b in app.binds), app.binds
    seen = json.loads((share / "seen.json").read_text())
    assert seen == {str(share / "shadowlink"): "FileNotFoundError",
                    str(share / "vaultlink" / "secret.txt"): "FileNotFoundError",
                    str(share / "secretlink"): "FileNotFoundError"}, seen


@needs_root
def test_workflow_launch_steps_and_foreach_rows_bind_nothing_an_app_named(land) -> None:
    from deskpilot.workflow import parse_workflow, run_workflow

    root, vault = land["root"], land["vault"]
    (root / "rows.csv").write_text(f"path\n{vault}/secret.txt\n")  # a row names a host path: data, refused
    text = textwrap.dedent("""\
        desktop: {size: 480x320, shares: [work]}
        steps:
          - launch: /usr/bin/python3 tools/plant.py {cwd}/work --window
          - launch: /usr/bin/python3 tools/probe.py work/seen.json work/shadowlink work/vaultlink/secret.txt --window
          - wait_for_window: probed seen.json
          - foreach: rows.csv
            steps:
              - launch: /usr/bin/python3 tools/probe.py work/row.json {path} --window
        """)
    result = run_workflow(parse_workflow(text, "f.yaml", base_dir=root), root / "run", base_dir=root)
    assert [s.status for s in result.steps] == ["passed", "passed", "passed", "error"], [s.message for s in result.steps]
    seen = json.loads((land["share"] / "seen.json").read_text())
    assert len(seen) == 2 and set(seen.values()) == {"FileNotFoundError"}, seen
    assert not result.ok and result.steps[-1].status == "error"
    assert "came from data" in result.steps[-1].message
    assert not (land["share"] / "row.json").exists()
    for path in (root / "run").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_workflow_share_named_by_a_row_is_refused(tmp_path: Path) -> None:
    from deskpilot.workflow import parse_workflow, run_workflow

    (tmp_path / "rows.csv").write_text("dir\n/etc\n")
    text = ("steps:\n  - foreach: rows.csv\n    sandbox: per_row\n    steps: [{key: a}]\n"
            "desktop: {size: 320x240, shares: ['{dir}']}\n")
    result = run_workflow(parse_workflow(text, "f.yaml", base_dir=tmp_path, cli_vars={"dir": str(tmp_path)}),
                          tmp_path / "run", base_dir=tmp_path)
    assert not result.ok
    assert "must be named by you" in (result.steps[-1].message or result.error or "")


def _no_secret_in(*folders: Path, also: str = "") -> None:
    assert SECRET not in also
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert SECRET.encode() not in path.read_bytes(), path


@needs_root
def test_checks_never_read_or_write_through_a_planted_folder_link(land) -> None:
    """File, CSV, exists and screenshot-baseline checks with absolute paths through share/vaultlink."""
    from deskpilot.agent.checks import CheckContext, run_checks
    from deskpilot.agent.desk.session import Session

    share, tools, vault = land["share"], land["tools"], land["vault"]
    (vault / "base.png").write_bytes(b"root's own baseline")
    (vault / "base.png").chmod(0o600)
    before = sorted(p.name for p in vault.iterdir())
    with Session(size=(320, 240), shares=[share]) as desk:
        planter = desk.launch(f"/usr/bin/python3 {tools}/plant.py {share}", wait=False)
        assert planter.wait(20) == 0, planter.stderr_path.read_text()
        ctx = CheckContext(base_dir=land["root"], screen=desk.screenshot, sandbox=desk, update_baselines=True,
                           out_dir=land["root"] / "evidence")
        results = run_checks([
            {"file": f"{share}/vaultlink/secret.txt", "contains": "vault"},
            {"file": f"{share}/vaultlink/rows.csv", "csv_cell": {"row": 2, "col": 1, "equals": "x"}},
            {"file": f"{share}/vaultlink/secret.txt", "exists": True},
            {"screenshot_matches": f"{share}/vaultlink/base.png"},
            {"screenshot_matches": f"{share}/vaultlink/new/made.png"},
        ], ctx)
    assert [r.passed for r in results] == [False] * 5, [r.message for r in results]
    for r in results[:2] + results[3:]:
        assert r.message.endswith(f"{share / 'vaultlink'} is a symbolic link: checks do not follow links "
                                  "(an app may have made it)") or "symbolic link" in r.message, r.message
    assert sorted(p.name for p in vault.iterdir()) == before  # nothing created in the root-only folder
    assert (vault / "base.png").read_bytes() == b"root's own baseline" and (vault / "base.png").stat().st_mode & 0o777 == 0o600
    _no_secret_in(land["root"] / "evidence", also=json.dumps([r.model_dump(mode="json") for r in results]))


def _cli(*args: object, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deskpilot.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _done_script(folder: Path) -> Path:
    script = folder / "replies.json"
    script.write_text(json.dumps(["I am done.\n<|begin_of_box|>DONE()<|end_of_box|>\nMemory:\n[]"]))
    return script


@needs_root
def test_run_expect_file_through_a_planted_link_fails_and_shows_nothing(land) -> None:
    share, tools, root = land["share"], land["tools"], land["root"]
    proc = _cli("run", "nothing to do", "--app", f"/usr/bin/python3 {tools}/plant.py {share} --window",
                "--share", share, "--script", _done_script(root), "--size", "480x320", "--json",
                "--out", root / "run", "--expect-file", f"{share}/vaultlink/secret.txt:contains:vault")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "FAILED" and "symbolic link" in result["reason"], result
    _no_secret_in(root / "run", also=proc.stdout + proc.stderr)


@needs_root
def test_eval_csv_check_through_a_planted_link_puts_nothing_in_results(land) -> None:
    root, tools = land["root"], land["tools"]
    suite = root / "suite.json"
    suite.write_text(json.dumps({"name": "links", "tasks": [{
        "id": "plant", "task": "Nothing to do", "max_steps": 2,
        "desktop": {"size": "480x320", "apps": [f"/usr/bin/python3 {tools}/plant.py work --window"],
                    "shares": ["work"]},
        "script": ["Done.\n<|begin_of_box|>DONE()<|end_of_box|>\nMemory:\n[]"],
        "checks": [{"file": "work/vaultlink/rows.csv", "csv_cell": {"row": 2, "col": 1, "equals": "x"}}]}]}))
    proc = _cli("eval", suite, "--out", root / "out", "--quiet")
    assert proc.returncode == 1, proc.stderr
    line = json.loads((root / "out" / "results.jsonl").read_text().splitlines()[0])
    assert line["status"] == "FAILED" and "symbolic link" in json.dumps(line), json.dumps(line)
    _no_secret_in(root / "out", also=proc.stdout + proc.stderr)


@needs_root
def test_foreach_csv_through_a_planted_folder_link_is_refused(land) -> None:
    from deskpilot.workflow import parse_workflow, run_workflow

    root = land["root"]
    (land["share"] / "vaultlink").mkdir()  # the user's CSV, which the app replaces by a link
    (land["share"] / "vaultlink" / "rows.csv").write_text("path\nthe user's row\n")
    text = textwrap.dedent("""\
        desktop: {size: 480x320, shares: [work]}
        steps:
          - launch: /usr/bin/python3 tools/plant.py {cwd}/work --window
          - foreach: '{cwd}/work/vaultlink/rows.csv'
            steps: [{type: '{path}'}]
        """)
    result = run_workflow(parse_workflow(text, "f.yaml", base_dir=root), root / "run", base_dir=root)
    assert [s.status for s in result.steps] == ["passed", "error"], [s.message for s in result.steps]
    assert result.steps[-1].message.startswith(f"foreach: {land['share'] / 'vaultlink'} is a symbolic link: "
                                               "checks do not follow links (an app may have made it); evidence: ")
    _no_secret_in(root / "run")
