"""`--live [PORT]`: a flag alone (any free port) or with a port, on every command that has it."""

from __future__ import annotations

import pytest
import typer

from deskpilot.cli import app
from deskpilot.cli.live_option import expand_live, live_port

COMMANDS = {  # command path -> the positional arguments it needs
    ("run",): ["open xterm"],
    ("workflow", "run"): ["flow.yaml"],
    ("eval",): ["suite.yaml"],
    ("mcp",): [],
}


def parsed(path: tuple[str, ...], args: list[str]) -> dict:
    """The values the real command would be called with (parsing only: nothing starts)."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    ctx = command.make_context(" ".join(path), list(args))
    return ctx.params


@pytest.mark.parametrize("path", list(COMMANDS))
def test_both_forms_parse_on_every_command(path):
    pos = COMMANDS[path]
    assert parsed(path, pos)["live"] is None  # no --live: no page
    assert parsed(path, [*pos, "--live"])["live"] == 0  # alone, last: any free port
    assert parsed(path, ["--live", *pos])["live"] == 0  # alone, before the positional argument
    assert parsed(path, [*pos, "--live", "8765"])["live"] == 8765
    assert parsed(path, [*pos, "--live=8766"])["live"] == 8766
    assert parsed(path, [*pos, "--live", "--config", "x.toml"])["live"] == 0  # alone, before another option
    old = parsed(path, [*pos, "--live", "--live-port", "9000"])  # the old spelling still works
    assert live_port(old["live"], old["live_port"]) == 9000
    assert live_port(None, 9000) is None  # --live-port alone never started a page


def test_the_positional_argument_is_not_taken_for_a_port():
    params = parsed(("run",), ["--live", "open xterm", "--quiet"])
    assert params["live"] == 0 and params["task"] == "open xterm" and params["quiet"]
    params = parsed(("run",), ["--live", "8765", "open xterm"])
    assert params["live"] == 8765 and params["task"] == "open xterm"


def test_bad_ports_are_usage_errors():
    with pytest.raises(typer.BadParameter, match="65535"):
        parsed(("run",), ["x", "--live", "70000"])


def test_expand_live_rewrites_only_a_bare_flag():
    assert expand_live(["--live"]) == ["--live", "0"]
    assert expand_live(["--live", "80", "t"]) == ["--live", "80", "t"]
    assert expand_live(["--live=80"]) == ["--live=80"]
    assert expand_live(["t", "--live", "--quiet"]) == ["t", "--live", "0", "--quiet"]
    assert expand_live(["--", "--live"]) == ["--", "--live"]  # after `--` it is an argument, not the option
    assert expand_live(["--lively"]) == ["--lively"]


def test_help_names_the_optional_port():
    from typer.testing import CliRunner

    out = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200"}).output
    assert "--live" in out and "[PORT]" in out and "--ray" in out and "not with --ray" in out
    assert "--live-port" not in out  # hidden: kept for old command lines only


def test_root_flags_are_hoisted_in_front_of_the_command():
    from deskpilot.cli import hoist_global_flags

    assert hoist_global_flags(["deskpilot", "run", "task", "--update-baselines", "--quiet"]) == \
        ["deskpilot", "--update-baselines", "run", "task", "--quiet"]
    assert hoist_global_flags(["deskpilot", "run", "--", "--update-baselines"]) == \
        ["deskpilot", "run", "--", "--update-baselines"]  # after --, it is the task's text
    assert hoist_global_flags(["deskpilot"]) == ["deskpilot"]
