"""`deskpilot record`: a person shows the task on a sandbox; a workflow file comes out."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from deskpilot.cli.live_option import live_option, live_port_option
from deskpilot.cli.live_option import live_port as live_port_of
from deskpilot.cli.run import _raise_interrupt, _user_errors, console, fail


def record(
    out: Path = typer.Option(..., "--out", help="The file to write: NAME.yaml (a workflow), test_NAME.py (a pytest "
                                               "file) or NAME_suite.yaml / NAME.json (an eval suite task)"),
    task: Optional[str] = typer.Option(None, "--task", help="The task's text in an eval suite task [default: a sentence naming the recording]"),
    app: list[str] = typer.Option([], "--app", help="App to start in the sandbox (repeatable), e.g. --app \"mousepad notes.txt\""),
    size: Optional[str] = typer.Option(None, help="Screen size WIDTHxHEIGHT [default: 1920x1080]"),
    share: list[str] = typer.Option([], "--share", help="Host folder bound read-write at the same path (repeatable)"),
    isolation: Optional[str] = typer.Option(None, help="bwrap or none [default: bwrap]"),
    network: Optional[bool] = typer.Option(None, "--network/--no-network", help="Let apps reach the network [default: no]"),
    maximize: Optional[bool] = typer.Option(None, "--maximize/--no-maximize", help="Start app windows maximized [default: maximized]"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder for the recording's screens and report [default: runs/DATE-record-NAME]"),
    var: list[str] = typer.Option([], "--var", metavar="NAME=VALUE",
                                  help="Typed occurrences of VALUE are written as {NAME} (repeatable; the workflow's vars keep VALUE)"),
    secret: list[str] = typer.Option([], "--secret", metavar="NAME",
                                     help="Environment variable whose value, when typed, is written as {NAME}: never in the file or the run folder (repeatable)"),
    check_files: bool = typer.Option(True, "--check-files/--no-check-files",
                                     help="End with a check of each share file the demonstration wrote (its text, "
                                          "or that it exists) [default: on]"),
    ocr: bool = typer.Option(True, "--ocr/--no-ocr", help="Turn clicks on readable text into click_text (OCR, slower) [default: on]"),
    config: Optional[Path] = typer.Option(None, help="TOML config file [default: ./deskpilot.toml if present]"),
    live: Optional[int] = live_option("the sandbox (and drive it with noVNC; 'Hand back' ends the recording)"),
    live_port: int = live_port_option(),
    vnc: Optional[int] = typer.Option(None, "--vnc", metavar="[PORT]", min=0, max=65535,
                                      help="Port of the VNC server (always on while recording: 127.0.0.1, a one-time "
                                           "password, its vnc:// line on stderr) \\[default: the first free from 5900]"),
) -> None:
    """Record what a person does on a fresh sandbox and write it as a workflow.

    The person drives the sandbox over VNC (the vnc:// line on stderr) or in the
    live page (--live). Clicks become click_text (readable text under the pointer)
    or click (thousandths of the screen), typing becomes type, shortcuts key, new
    windows wait_for_window. Ctrl-C (or Hand back in the page) ends the recording.
    """
    from deskpilot.agent.config.spec import load_config
    from deskpilot.agent.records.rundir import claim_run_dir, default_run_dir
    from deskpilot.record.writers import prepare_output

    try:
        prepare_output(out)
        variables, secrets = _values(var, secret)
        cfg = load_config({"apps": app, "size": size, "shares": [Path(s) for s in share], "isolation": isolation,
                           "network": network, "maximize": maximize, "vnc": 0 if vnc is None else vnc},
                          config_file=config)
        spec = cfg.session_spec()
        folder = run_dir or default_run_dir(f"record {out.stem}", None)
        claim_run_dir(folder, create=False)
    except typer.BadParameter as err:
        raise fail(str(err)) from None
    except _user_errors() as err:
        raise fail(str(err)) from None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = _record(spec, cfg, out, folder, live_port_of(live, live_port), ocr, app, share, task,
                         check_files, variables, secrets)
    except _user_errors() as err:
        raise fail(str(err)) from None
    replay = {"workflow": f"deskpilot workflow check {result.workflow}", "pytest": f"pytest {result.workflow}",
              "suite": f"deskpilot eval {result.workflow}"}[result.format]
    console.print(f"{result.format}: {result.workflow} ({result.steps} step(s) from {result.events} input event(s))\n"
                  f"run folder: {result.run_dir}\ntry it: {replay}", soft_wrap=True, highlight=False)


def _record(spec, cfg, out: Path, folder: Path, live: int | None, ocr: bool, app: list[str], share: list[str],
            task: str | None, check_files: bool, variables: dict[str, str], secrets: dict[str, str]):
    from deskpilot.agent.desk.session import Session
    from deskpilot.errors import UsageError
    from deskpilot.record import (RecordResult, Recording, keep_run_folder, output_format, portable_desktop,
                                  rebased, write_output)

    say = lambda m: console.print(m, soft_wrap=True, highlight=False)  # noqa: E731
    with Session(spec=spec) as desk:
        handover = view = None
        if live is not None:
            handover, view = _page(desk, live)
        recording = Recording(desk, ocr=ocr, shares=[Path(s) for s in spec.shares], variables=variables,
                              secrets=secrets, check_folder=Path.cwd())
        if view is not None:
            view.recording = recording
        recording.start()
        say("recording: do the task over VNC" + (" or in the live page" if view else "")
            + "; Ctrl-C" + (" or 'Hand back'" if view else "") + " ends it")
        try:
            while handover is None or handover.wait(0.2) is None:
                if handover is None:
                    time.sleep(0.2)  # Ctrl-C / SIGTERM interrupt this
        except KeyboardInterrupt:
            say("[yellow]recording ended[/yellow] (interrupted)")
        finally:
            recording.stop()
            if view is not None:
                view.stop()
        if not recording.seen:
            say("nothing was recorded (no key or click reached the sandbox)")
        if ocr and any(s.frame is not None for s in recording.seen):
            say("reading the clicked places (OCR)…")
        steps = recording.compile()
        if check_files:
            steps += recording.file_checks(Path.cwd())
        w, h = spec.size
        desktop = {"size": f"{w}x{h}", "apps": list(app) or list(cfg.desktop.apps),
                   "shares": list(share) or [str(p) for p in cfg.desktop.shares]}
    used = {name for c in steps for name in re.findall(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}", json.dumps(c.step))}
    kept = {k: v for k, v in recording.variables.items() if k in used}
    names = [n for n in recording.secret_names if n in used]
    keep_run_folder(folder, spec, steps, say, desktop=desktop,  # a workflow: paths relative to where it runs
                    name=out.stem, variables=kept, secrets=names)  # first: nothing recorded is lost
    for note in dict.fromkeys(recording.notes):
        say(f"[yellow]note:[/yellow] {note}")
    for name in recording.secret_fields:
        say(f"typed into a password field: written as {{{name}}}; set the environment variable {name} to replay")
    try:
        # workflows resolve relative paths where they run (as here); pytest files and suites, in their folder
        here = Path.cwd()
        there = here if output_format(out) == "workflow" else out.resolve().parent
        kind = write_output(out, out.stem, portable_desktop(desktop, here, there), rebased(steps, here, there),
                            task=task, variables=kept, secrets=names)
    except (OSError, UsageError) as err:
        raise UsageError(f"{err} (the recording is kept as a workflow: {folder / 'recorded.yaml'})") from None
    return RecordResult(workflow=out, format=kind, run_dir=folder, steps=len(steps), events=len(recording.seen))


def _values(var: list[str], secret: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """--var NAME=VALUE and --secret NAME (an environment variable) -> (variables, secrets); one-line errors."""
    import os

    from deskpilot.errors import UsageError

    variables: dict[str, str] = {}
    for item in var:
        name, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not value:
            raise UsageError(f"--var {item!r}: give NAME=VALUE (NAME: letters, digits, _; VALUE: what you will type)")
        variables[name] = value
    secrets: dict[str, str] = {}
    for name in secret:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"--secret {name!r}: give the name of an environment variable")
        if not os.environ.get(name):
            raise UsageError(f"--secret {name}: the environment variable {name} is not set")
        secrets[name] = os.environ[name]
    return variables, secrets


def _page(desk, port: int):
    """The live page with noVNC, the person driving from the start; 'Hand back' ends the recording."""
    from deskpilot.agent.loop.handover import Handover
    from deskpilot.live import LiveView

    handover = Handover()
    server = desk.sandbox.vnc
    handover.viewer_url = desk.sandbox.start_vnc_web().url(server.access.password)
    handover.take()
    handover.begin()
    view = LiveView(port=port, handover=handover).start()
    view.attach(desk.sandbox)
    console.print(f"live view: {view.url}", soft_wrap=True)
    sys.stderr.flush()
    return handover, view


__all__ = ["record"]
