"""`deskpilot run | demo | report | replay | locate | ask`."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from deskpilot.agent.config import ConfigError, RunConfig, load_config

console = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())  # no wrapping in logs and pipes
EXIT = {"DONE": 0, "FAIL": 1, "MAX_STEPS": 1, "STOPPED": 1, "ERROR": 2}


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _user_errors():
    """The exception types whose one-line message is shown as is (anything else is a bug)."""
    from deskpilot.errors import DeskpilotError

    return (DeskpilotError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
            NotADirectoryError)


def default_run_dir(task: str, base: Path | None) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in task.lower())[:40].strip("-") or "run"
    path = (base or Path("runs")) / f"{datetime.now():%Y%m%d-%H%M%S}-{slug}"
    n = 2
    while path.exists():  # two runs started in the same second
        path = path.with_name(f"{path.name.rsplit('~', 1)[0]}~{n}")
        n += 1
    return path


def make_backend(cfg: RunConfig):
    from deskpilot.model_backend import OpenAICompatibleBackend, ScriptedBackend

    if cfg.script is not None:
        if not cfg.script.is_file():
            raise ConfigError(f"script file {cfg.script} does not exist")
        return ScriptedBackend.from_file(cfg.script)
    if cfg.base_url:
        return OpenAICompatibleBackend(cfg.base_url, cfg.model, api_key=cfg.api_key, flavor=cfg.flavor,
                                       timeout=cfg.step_timeout)
    raise ConfigError("no model: give --base-url URL (vLLM, SGLang or any OpenAI-compatible server) "
                      "or --script FILE (recorded replies)")


def make_policy(cfg: RunConfig):
    from deskpilot.agent.policy import Policy, Region

    return Policy(
        max_steps=cfg.max_steps, step_timeout_s=cfg.step_timeout, run_timeout_s=cfg.run_timeout,
        stuck_repeats=cfg.stuck_repeats, allow_keys=cfg.allow_keys, deny_keys=cfg.deny_keys,
        allow_regions=None if cfg.allow_regions is None else [Region.parse(r) for r in cfg.allow_regions],
        deny_regions=[Region.parse(r) for r in cfg.deny_regions], on_violation=cfg.on_violation,
    )


class Progress:
    """One line per step on stderr: step n/max, action, per-phase timings."""

    def __init__(self, quiet: bool = False, redact=None):
        self.quiet = quiet
        self.redact = redact or (lambda text: text)
        self._status = None

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        kind = event["event"]
        if kind == "thinking":
            self._stop()
            from deskpilot.agent.cli.output import Elapsed

            self._status = console.status(Elapsed(f"step {event['step']}/{event['max_steps']}: asking the model…"))
            self._status.start()
        elif kind == "retry":
            console.print(f"  [yellow]reply did not parse[/yellow] ({escape(event['error'])}); asking again")
        elif kind == "step":
            self._stop()
            rec = event["record"]
            t = rec.timings_ms
            phases = " ".join(f"{k} {t[k]:.0f}ms" for k in ("capture", "model", "parse") if k in t)
            where = " ".join(f"({x},{y})" for x, y in rec.points)
            text = self.redact(rec.action_text)
            call = escape(text if len(text) <= 60 else text[:57] + "...")
            denied = "" if rec.policy.allowed else f" [red]blocked: {escape(rec.policy.reason)}[/red]"
            console.print(f"step {event['step']}/{event['max_steps']}  [bold]{rec.action['type']}[/bold] {where}"
                          f"  {call}  [dim]{phases}[/dim]{denied}", markup=True, highlight=False)
        elif kind == "end":
            self._stop()

    def pause(self) -> None:
        """Stop the spinner (before asking on the terminal)."""
        self._stop()

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def ask_on_terminal(step: int, action, thought: str):
    """yes: perform it; no (the default): skip it and tell the model why; quit: stop the run."""
    from rich.prompt import Prompt

    console.print(f"[bold]step {step}[/bold]: {escape(thought or '(no explanation given)')}")
    answer = Prompt.ask(f"perform {escape(action.model_dump_json())}? [bold]y[/bold]es / [bold]n[/bold]o, skip it "
                        f"/ [bold]q[/bold]uit", console=console, choices=["y", "n", "q"], default="n",
                        show_choices=False)
    if answer == "y":
        return "yes"
    if answer == "q":
        return "quit"
    why = Prompt.ask("why not? (told to the model; Enter to skip)", console=console, default="", show_default=False)
    return ("no", why.strip())


def execute_run(cfg: RunConfig, task: str, spec, run_dir: Path, *, quiet: bool = False,
                live: int | None = None, record: Path | None = None):
    """Start the sandbox, run the agent, write the report. Returns RunResult."""
    from deskpilot.agent.dialects import GLM45VDialect
    from deskpilot.agent.loop import Agent, LoopSettings
    from deskpilot.agent.report import build_report
    from deskpilot.agent.session import open_sandbox, wait_until_ready
    from deskpilot.perception import Capturer

    backend = make_backend(cfg)
    dialect = GLM45VDialect(extra_instructions=cfg.extra_instructions, secrets=cfg.secrets)
    settings = LoopSettings(thinking=cfg.thinking, max_tokens=cfg.max_tokens, temperature=cfg.temperature,
                            parse_retries=cfg.parse_retries, dry_run=cfg.dry_run)
    if (run_dir / "trajectory.jsonl").exists():
        raise ConfigError(f"{run_dir} already holds a run: choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(quiet, redact=dialect.redact)

    def confirm_on_terminal(step: int, action, thought: str) -> bool:
        progress.pause()
        return ask_on_terminal(step, action, dialect.redact(thought))

    confirm = confirm_on_terminal if cfg.confirm else None
    if not quiet:
        console.print(f"starting a {spec.size[0]}x{spec.size[1]} sandbox ({spec.isolation}); "
                      f"recording to {run_dir}")
    sb, apps = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer, handles=apps, has_apps=bool(spec.apps))
            from deskpilot.agent.live import watch

            with watch(sb, live=live, record=record, say=lambda m: console.print(m, soft_wrap=True)) as watcher, \
                 Agent(backend, sb, dialect, run_dir=run_dir, policy=make_policy(cfg), settings=settings,
                       confirm=confirm, on_event=lambda e: (progress(e), watcher(e)), capturer=capturer,
                       run_info={"session": spec.model_dump(mode="json"), "model": cfg.model,
                                 "base_url": cfg.base_url, "script": str(cfg.script) if cfg.script else None,
                                 "instructions": cfg.extra_instructions, "secrets": sorted(cfg.secrets)}) as agent:
                result = agent.run(task)
        finally:
            capturer.close()
            backend.close()
            if (run_dir / "trajectory.jsonl").is_file():
                build_report(run_dir)
    return result


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run_or_exit(cfg: RunConfig, task: str, spec, run_dir: Path, quiet: bool, **watch):
    """execute_run, with user mistakes, Ctrl-C and SIGTERM turned into messages and exit codes."""
    import signal

    signal.signal(signal.SIGTERM, _raise_interrupt)  # `timeout`, CI cancels: end the run cleanly too
    try:
        result = execute_run(cfg, task, spec, run_dir, quiet=quiet, **watch)
        from deskpilot.agent.dialects import GLM45VDialect

        redact = GLM45VDialect(secrets=cfg.secrets).redact
        return result.model_copy(update={"answer": redact(result.answer) if result.answer else result.answer,
                                         "reason": redact(result.reason)})
    except _user_errors() as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/yellow]; what was recorded is in {run_dir} "
                      f"(report: {run_dir / 'report.html'})")
        raise typer.Exit(130) from None


def run(
    task: str = typer.Argument(..., help="What the agent should do, in plain words."),
    app: list[str] = typer.Option([], "--app", help="App to start in the sandbox (repeatable), e.g. --app xterm"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"),
    model: Optional[str] = typer.Option(None, help="Served model name [default: glm-4.5v]"),
    flavor: Optional[str] = typer.Option(None, help="Server kind: vllm, sglang, zai, openai, transformers"),
    thinking: Optional[bool] = typer.Option(None, "--thinking/--no-thinking", help="Thinking mode [default: on]"),
    max_steps: Optional[int] = typer.Option(None, help="Step limit [default: 30]"),
    size: Optional[str] = typer.Option(None, help="Screen size WIDTHxHEIGHT [default: 1920x1080]"),
    out: Optional[Path] = typer.Option(None, help="Run folder [default: runs/DATE-TASK]"),
    dry_run: Optional[bool] = typer.Option(None, "--dry-run", help="Parse and record, never act"),
    confirm: Optional[bool] = typer.Option(None, "--confirm", help="Ask on the terminal before each action"),
    share: list[Path] = typer.Option([], "--share", help="Host folder bound read-write at the same path (repeatable)"),
    script: Optional[Path] = typer.Option(None, help="JSON list of replies to use instead of a model"),
    config: Optional[Path] = typer.Option(None, help="TOML config file [default: ./deskpilot.toml if present]"),
    isolation: Optional[str] = typer.Option(None, help="bwrap (default) or none"),
    network: Optional[bool] = typer.Option(None, "--network", help="Let apps reach the network"),
    deny_key: list[str] = typer.Option([], "--deny-key", help="Key chord never to press, e.g. ctrl+alt+delete"),
    deny_region: list[str] = typer.Option([], "--deny-region", help="Pixel region x1,y1,x2,y2 never to touch"),
    secret: list[str] = typer.Option([], "--secret", help="Name of an environment variable whose value the model may use; kept out of logs"),
    instructions: Optional[str] = typer.Option(None, help="Extra instructions added to every prompt"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output"),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object on stdout (status, answer, "
                                  "reason, steps, run_dir, report, error_kind, exit_code, totals, checks)"),
    live: bool = typer.Option(False, "--live", help="Watch the screen in a browser: a 127.0.0.1 page at a secret URL"),
    live_port: int = typer.Option(0, "--live-port", help="Port of the --live page (0: any free port)"),
    record: Optional[Path] = typer.Option(None, "--record", metavar="FILE",
                                          help="Save a video of the screen with the actions drawn (.mp4, .webm or .gif)"),
) -> None:
    """Run the agent on TASK in a fresh sandbox.

    The result goes to stdout (one line, or one JSON object with --json), progress to stderr.
    Exit codes: 0 DONE; 1 FAIL, MAX_STEPS or STOPPED; 2 usage error or other ERROR;
    3 the model's replies never parsed; 4 the model server is unreachable or refused; 130 interrupted.
    """
    try:
        cfg = load_config(
            {"apps": app, "base_url": base_url, "model": model, "flavor": flavor, "thinking": thinking,
             "max_steps": max_steps, "size": size, "out": out, "dry_run": dry_run, "confirm": confirm,
             "shares": share, "script": script, "isolation": isolation, "network": network,
             "deny_keys": deny_key, "deny_regions": deny_region, "extra_instructions": instructions},
            config_file=config, secret_names=secret)
        if cfg.confirm and not sys.stdin.isatty():
            raise ConfigError("--confirm needs a terminal to ask on")
        from deskpilot.agent.session import SessionSpec, app_from_command

        spec = SessionSpec(size=cfg.screen, isolation=cfg.isolation, network=cfg.network,
                           shares=[str(p.resolve()) for p in cfg.shares],
                           apps=[app_from_command(a) for a in cfg.apps])
        run_dir = cfg.out or default_run_dir(task, None)
        if record is not None:
            from deskpilot.agent.live.record import check_target

            check_target(record)
    except _user_errors() as err:
        raise fail(str(err)) from None
    result = run_or_exit(cfg, task, spec, run_dir, quiet, live=live_port if live else None, record=record)
    from deskpilot.agent.cli.output import exit_code, print_result

    print_result(result, run_dir, console, as_json=json_out)
    raise typer.Exit(exit_code(result))


def demo(
    base_url: Optional[str] = typer.Option(None, help="Run the demo against a live model instead of the bundled replies"),
    model: Optional[str] = typer.Option(None, help="Served model name [default: glm-4.5v]"),
    thinking: Optional[bool] = typer.Option(None, "--thinking/--no-thinking"),
    size: str = typer.Option("1280x800", help="Screen size WIDTHxHEIGHT"),
    out: Optional[Path] = typer.Option(None, help="Run folder [default: runs/DATE-demo]"),
    isolation: str = typer.Option("bwrap", help="bwrap (default) or none"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Fill and save the bundled demo form, end to end, and check the saved file."""
    from deskpilot.agent.session import DEMO_REPLIES, DEMO_TASK, SessionSpec, demo_app

    try:
        run_dir = (out or default_run_dir("demo", None)).resolve()
        shared = run_dir / "output"
        shared.mkdir(parents=True, exist_ok=True)
        saved = shared / "form.json"
        cli = {"base_url": base_url, "model": model, "thinking": thinking, "size": size, "isolation": isolation,
               "script": None if base_url else DEMO_REPLIES, "max_steps": 15}
        cfg = load_config(cli, config_file=None, env={})
        spec = SessionSpec(size=cfg.screen, isolation=cfg.isolation, shares=[str(shared)], apps=[demo_app(saved)])
    except _user_errors() as err:
        raise fail(str(err)) from None
    result = run_or_exit(cfg, DEMO_TASK, spec, run_dir, quiet)
    from deskpilot.agent.cli.output import exit_code, print_result

    print_result(result, run_dir, console)
    expected = {"name": "Ada Lovelace", "email": "ada@example.org"}
    got = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
    if got == expected:
        console.print(f"[green]checked:[/green] {saved} holds {json.dumps(got)}")
        raise typer.Exit(exit_code(result))
    console.print(f"[red]check failed:[/red] {saved} holds {got!r}, expected {expected!r}")
    raise typer.Exit(1)
