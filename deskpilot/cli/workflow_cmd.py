"""`deskpilot workflow run | check`: files that mix deterministic steps and agent tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from deskpilot.cli.live_option import LiveCommand, live_option, live_port_option, view_only_option, vnc_option, vnc_settings
from deskpilot.cli.live_option import live_port as live_port_of
from deskpilot.cli.run import _user_errors, console, fail

workflow_app = typer.Typer(help="Run or validate workflow files (YAML).", no_args_is_help=True,
                           add_completion=False)


def _vars(assignments: list[str]) -> dict[str, str]:
    from deskpilot.workflow.variables import parse_assignment

    return dict(parse_assignment(a) for a in assignments)


@workflow_app.command("check")
def check(
    flow_file: Path = typer.Argument(..., help="The workflow file (YAML)"),
    var: list[str] = typer.Option([], "--var", help="A variable name=value (repeatable)"),
) -> None:
    """Validate a workflow file without starting anything."""
    from deskpilot.workflow import load_workflow

    try:
        flow = load_workflow(flow_file, _vars(var))
    except _user_errors() as err:
        raise fail(str(err)) from None
    console.print(f"[green]ok[/green]: {escape(str(flow_file))} ({flow.name}, {len(flow.steps)} step(s))",
                  soft_wrap=True)
    from deskpilot.workflow.runner import expect_steps

    if asking := expect_steps(flow.steps):  # not an error: `workflow run` is given the model
        console.print(f"note: expect checks (step {', '.join(asking)}) ask a model: run with --base-url URL "
                      f"or --script FILE", soft_wrap=True, highlight=False)


@workflow_app.command("run", cls=LiveCommand)
def run(
    flow_file: Path = typer.Argument(..., help="The workflow file (YAML)"),
    var: list[str] = typer.Option([], "--var", help="A variable name=value (repeatable); overrides vars:"),
    out: Optional[Path] = typer.Option(None, help="Run folder [default: runs/DATE-NAME]"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server for agent steps"),
    model: Optional[str] = typer.Option(None, help="Served model name [default: glm-4.5v]"),
    flavor: Optional[str] = typer.Option(None, help="Server kind: vllm, sglang, zai, openai, transformers"),
    thinking: Optional[bool] = typer.Option(None, "--thinking/--no-thinking", help="Thinking mode [default: on]"),
    script: Optional[Path] = typer.Option(None, help="JSON list of replies for the agent steps, in order"),
    config: Optional[Path] = typer.Option(None, help="TOML config file [default: ./deskpilot.toml if present]"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output"),
    live: Optional[int] = live_option(),
    live_port: int = live_port_option(),
    vnc: Optional[int] = vnc_option("each of the workflow's desktops"),
    view_only: bool = view_only_option(),
    record: Optional[Path] = typer.Option(None, "--record", metavar="FILE",
                                          help="Save a video of the workflow's desktops with the actions drawn "
                                               "(.mp4, .webm or .gif; sized like the first desktop)"),
) -> None:
    """Run a workflow in a fresh sandbox; exit 0 only if every step and check passed."""
    import signal

    from deskpilot.cli.run import _raise_interrupt
    from deskpilot.agent.config.spec import load_config
    from deskpilot.agent.records.rundir import default_run_dir
    from deskpilot.workflow import load_workflow, run_workflow
    from deskpilot.workflow.runner import needs_model, result_exit_code

    try:
        cli_vars = _vars(var)
        flow = load_workflow(flow_file, cli_vars)
        cfg = load_config({"base_url": base_url, "model": model, "flavor": flavor, "thinking": thinking,
                           "script": script, **vnc_settings(vnc, view_only)}, config_file=config)
        backend = cfg.make_backend() if needs_model(flow.steps) else None  # agent steps, expect checks

        def dialect_for(instructions: str, secrets: dict[str, str]):
            return cfg.make_dialect(instructions=instructions, secrets=secrets)

        run_dir = out or default_run_dir(flow.name, None)
        if record is not None:
            from deskpilot.live.record import check_target

            check_target(record)
    except _user_errors() as err:
        raise fail(str(err)) from None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    say = (lambda line: None) if quiet else (lambda line: console.print(escape(line), highlight=False, soft_wrap=True))
    view = recorder = None
    if live is not None:
        from deskpilot.live import LiveView

        view = LiveView(port=live_port_of(live, live_port)).start()
        console.print(f"live view: {view.url}", soft_wrap=True)
    if record is not None:
        from deskpilot.live.record import Recorder

        recorder = Recorder(record)
    from deskpilot.live import Watchers

    watchers = Watchers(view, recorder)
    try:
        result = run_workflow(flow, run_dir, backend=backend, cli_vars=cli_vars, settings=cfg.loop,
                              instructions=cfg.instructions, say=say, make_dialect=dialect_for, policy=cfg.policy,
                              watch=watchers if watchers.sinks else None, vnc=cfg.session_spec().vnc)
    except _user_errors() as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/yellow]; what was recorded is in {run_dir}")
        raise typer.Exit(130) from None
    finally:
        if backend is not None:
            backend.close()
        if view is not None:  # a watching page keeps the final screen and result a few seconds
            view.finish(say=lambda line: console.print(escape(line), highlight=False, soft_wrap=True))
        if recorder is not None:
            written = recorder.close()
            if written is not None:
                console.print(f"video: {written} ({recorder.frames} frames)", soft_wrap=True)
    colour = "green" if result.ok else "red"
    verdict = "passed" if result.ok else ("error" if result.error else "failed")
    console.print(f"[{colour}]{verdict}[/{colour}]: {escape(flow.name)}, {len(result.steps)} step(s) in "
                  f"{result.seconds:.1f} s" + (f": {escape(result.error)}" if result.error else ""))
    for step in result.failed:
        console.print(f"  step {step.number} {escape(step.label)}: {escape(step.message)}")
    console.print(f"run folder: {run_dir}\nreport: {result.report_path}")
    raise typer.Exit(result_exit_code(result))
