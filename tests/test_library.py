"""The library as a newcomer meets it: `import deskpilot`, the README example,
the computer-control API, and what a wheel puts into site-packages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import deskpilot
from apps import launch_probe

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = {
    "Sandbox", "Agent", "RunResult", "Status", "Policy", "OpenAICompatibleBackend", "ScriptedBackend",
    "TransformersBackend", "Click", "Type", "Key", "Scroll", "Drag", "Done", "replay", "build_report", "load_run",
    "DeskpilotError", "CheckFailed",
}
DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]


def test_the_package_exports_the_documented_names():
    assert DOCUMENTED <= set(deskpilot.__all__)
    for name in deskpilot.__all__:
        assert getattr(deskpilot, name) is not None
    assert issubclass(deskpilot.CheckFailed, AssertionError)
    assert issubclass(deskpilot.UsageError, deskpilot.DeskpilotError)
    assert re.fullmatch(r"\d+\.\d+\.\d+", deskpilot.__version__)
    with pytest.raises(AttributeError):
        deskpilot.NoSuchThing  # noqa: B018


def test_version_flag():
    out = subprocess.run([*DESKPILOT, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"deskpilot {deskpilot.__version__}"


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    example = [b for b in blocks if "deskpilot.Sandbox(" in b and "agent.run(" in b]
    assert example, "the README has no library example"
    return example[0]


def test_readme_example_runs_as_written_and_the_cli_reads_its_run(tmp_path, monkeypatch):
    """The example with one line changed: recorded replies instead of a model server."""
    work = tmp_path / "work"
    work.mkdir()
    target = work / "today.txt"
    replies = [
        f"The terminal is open, so I type the command.\n<|begin_of_box|>type(content='date > {target}\\n')"
        "<|end_of_box|>\nMemory:\n[]",
        "The date was saved.\n<|begin_of_box|>DONE()<|end_of_box|>",
    ]
    code = _readme_example()
    backend_line = re.search(r"^backend = .*$", code, flags=re.M)
    assert backend_line, "the example names its backend on one line"
    code = code.replace(backend_line.group(0), f"backend = deskpilot.ScriptedBackend({replies!r})")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the README's own code, not model output
    result = scope["result"]
    assert result.status == deskpilot.Status.DONE and result.ok
    assert result.steps_taken == 2 and [a.type for a in result.actions] == ["type", "done"]
    assert result.history[0].performed and result.history[0].action.text.startswith("date > ")
    assert Path(result.final_screenshot).is_file()
    run_dir = Path(result.run_dir)
    assert run_dir.resolve().parent == tmp_path / "runs" and Path(result.report_path).resolve() == run_dir.resolve() / "report.html"
    for _ in range(50):  # the shell writes the file a moment after Enter
        if target.is_file() and target.read_text().strip():
            break
        import time; time.sleep(0.1)  # noqa: E702
    assert target.read_text().strip(), "xterm in the sandbox wrote into the shared folder"

    run = deskpilot.load_run(run_dir)
    assert run.format_version == 2 and run.status == "DONE"
    assert [type(a).__name__ for a in run.actions(performed_only=True)] == ["Type"]
    assert run.error_messages() == [] and run.errors == [] and len(run.screenshots()) == 2

    out = subprocess.run([*DESKPILOT, "report", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    target.unlink()
    out = subprocess.run([*DESKPILOT, "replay", str(run_dir), "--no-check"], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr


def test_a_run_folder_takes_one_run_only(tmp_path):
    replies = ["<|begin_of_box|>DONE()<|end_of_box|>"]
    with deskpilot.Sandbox(size=(640, 480)) as desk:
        first = deskpilot.Agent(deskpilot.ScriptedBackend(replies), desk, run_dir=tmp_path / "run").run("nothing")
        assert first.status == deskpilot.Status.DONE
        with pytest.raises(deskpilot.RunFolderError, match="already holds a run"):
            deskpilot.Agent(deskpilot.ScriptedBackend(replies), desk, run_dir=tmp_path / "run").run("again")
    assert len((tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()) == 2  # one step, one end


def test_computer_api_clicks_and_types_exactly(tmp_path):
    with deskpilot.Sandbox(size=(1024, 768)) as desk:
        probe = launch_probe(desk.sandbox, title="library-probe")
        x, y = probe.point("area", 37, 91)
        mark = probe.log.mark()
        desk.click(x, y)
        press = probe.log.wait_for(lambda e: e["ev"] == "press" and e.get("button") == 1, mark)
        assert (press["x_root"], press["y_root"]) == (x, y)

        mark = probe.log.mark()
        desk.right_click(x + 5, y + 7)
        press = probe.log.wait_for(lambda e: e["ev"] == "press" and e.get("button") == 3, mark)
        assert (press["x_root"], press["y_root"]) == (x + 5, y + 7)

        desk.click(*probe.point("e1", 10, 5))
        mark = probe.log.mark()
        desk.type("café 你好 ✓")
        probe.wait_content("e1", "café 你好 ✓", mark)
        desk.key("ctrl+a")
        desk.key("backspace")
        probe.wait_content("e1", "", mark)

        shot = desk.screenshot(tmp_path / "shot.png")
        assert shot.size == (1024, 768) == desk.size
        assert (tmp_path / "shot.png").stat().st_size > 1000
        with pytest.raises(deskpilot.UsageError):
            desk.launch("no-such-program-anywhere")


def test_launch_takes_a_command_string(tmp_path):
    with deskpilot.Sandbox(size=(800, 600)) as desk:
        handle = desk.launch("xterm -title from-launch")
        assert handle.poll() is None
        assert desk.sandbox.wait_for_window("from-launch", timeout=10)
        assert desk.spec.apps[-1].argv[:3] == ["xterm", "-title", "from-launch"]


def test_wheel_installs_only_the_deskpilot_package(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("deskpilot-*.whl"))
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    before = set(os.listdir(site))
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a source tree on the path looks installed
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=300, env=clean)
    added = set(os.listdir(site)) - before
    assert {n for n in added if not n.endswith(".dist-info")} == {"deskpilot"}
    assert len([n for n in added if n.endswith(".dist-info")]) == 1
    assert (site / "deskpilot" / "py.typed").is_file()
    assert (site / "deskpilot" / "agent" / "records" / "templates" / "report.html.j2").is_file()
    for door_file in ("cli/__init__.py", "eval/templates/index.html.j2", "eval/example/suite.yaml",
                      "live/page.html", "demo/replies.json", "pytest_plugin.py", "mcp/server.py"):
        assert (site / "deskpilot" / door_file).is_file(), door_file
    # the dependencies come from the test venv; the package itself only from the wheel
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = ("import deskpilot, json; print(json.dumps([deskpilot.__file__, sorted(deskpilot.__all__), "
             "deskpilot.Agent.__module__]))")
    out = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    import json

    where, names, module = json.loads(out.stdout)
    assert where.startswith(str(site)) and DOCUMENTED <= set(names) and module == "deskpilot.agent.loop.agent"
    out = subprocess.run([env_dir / "bin" / "deskpilot", "--help"], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0 and "replay" in out.stdout, out.stderr
