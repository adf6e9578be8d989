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


def _register() -> None:
    from deskpilot.agent import cli_backend, cli_inspect, cli_parse, cli_run

    app.command("run")(cli_run.run)
    app.command("demo")(cli_run.demo)
    app.command("report")(cli_inspect.report)
    app.command("replay")(cli_inspect.replay)
    app.command("locate")(cli_inspect.locate)
    app.command("ask")(cli_inspect.ask)
    app.command("parse")(cli_parse.parse)
    app.command("serve")(cli_backend.serve)
    app.command("tiny-checkpoint")(cli_backend.tiny_checkpoint)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
