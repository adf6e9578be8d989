"""The `deskpilot` command: one typer app; each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="deskpilot",
    help="Let a vision-language model operate a sandboxed virtual desktop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from deskpilot import __version__

        typer.echo(f"deskpilot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    update_baselines: bool = typer.Option(
        False, "--update-baselines",
        help="Screenshot checks whose baseline is missing or differs write the current screen as the new baseline "
             "(and pass)."),
) -> None:
    """Let a vision-language model operate a sandboxed virtual desktop."""
    if update_baselines:
        import os

        from deskpilot.agent.checks.context import UPDATE_ENV

        os.environ[UPDATE_ENV] = "1"  # read by every check context, here and in processes we start


def _register() -> None:
    from deskpilot.cli import backend_cmds as cli_backend
    from deskpilot.cli import eval_cmd as cli_eval
    from deskpilot.cli import inspect_cmds as cli_inspect
    from deskpilot.cli import mcp_cmd as cli_mcp
    from deskpilot.cli import parse_cmd as cli_parse
    from deskpilot.cli import record_cmd as cli_record
    from deskpilot.cli import run as cli_run
    from deskpilot.cli import workflow_cmd as cli_workflow

    from deskpilot.cli.live_option import LiveCommand

    app.command("run", cls=LiveCommand)(cli_run.run)
    app.command("demo")(cli_run.demo)
    app.command("report")(cli_inspect.report)
    app.command("replay")(cli_inspect.replay)
    app.command("locate")(cli_inspect.locate)
    app.command("ask")(cli_inspect.ask)
    app.command("parse")(cli_parse.parse)
    app.command("serve")(cli_backend.serve)
    app.command("tiny-checkpoint")(cli_backend.tiny_checkpoint)
    app.command("mcp", cls=LiveCommand)(cli_mcp.mcp)
    app.add_typer(cli_workflow.workflow_app, name="workflow")
    app.command("eval", cls=LiveCommand)(cli_eval.eval_suite)
    app.command("record", cls=LiveCommand)(cli_record.record)


_register()


GLOBAL_FLAGS = ("--update-baselines",)


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move the root's flags in front of the command, so `deskpilot run ... --update-baselines` works too.

    Only before a bare `--` (after it everything is an argument).
    """
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[1:end] if a in GLOBAL_FLAGS]
    rest = [a for a in argv[1:end] if a not in GLOBAL_FLAGS]
    return argv[:1] + flags + rest + argv[end:]


def main() -> None:
    """The `deskpilot` command: a mistake on the command line is one line on stderr and exit 2."""
    import sys

    usage_error: type[Exception] = typer.BadParameter.__mro__[1]  # typer's own (vendored) click UsageError
    sys.argv = hoist_global_flags(sys.argv)
    try:
        code = app(standalone_mode=False)
    except usage_error as err:  # an unknown option, a value out of range, a missing argument
        ctx = getattr(err, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        sys.stderr.write(f"error: {err.format_message()}{where}\n")  # type: ignore[attr-defined]
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


