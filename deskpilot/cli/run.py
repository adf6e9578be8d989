"""`deskpilot run | demo | report | replay | locate | ask`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from deskpilot.agent.config.spec import ConfigError, RunConfig, load_config, require_utf8
from deskpilot.cli.live_option import live_option, live_port_option, view_only_option, vnc_option, vnc_settings
from deskpilot.cli.live_option import live_port as live_port_of

console = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())  # no wrapping in logs and pipes
EXIT = {"DONE": 0, "FAIL": 1, "MAX_STEPS": 1, "STOPPED": 1, "ERROR": 2, "PASSED": 0, "FAILED": 1}


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _user_errors():
    """The exception types whose one-line message is shown as is (anything else is a bug)."""
    from deskpilot.errors import DeskpilotError

    return (DeskpilotError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
            NotADirectoryError)


from deskpilot.agent.records.rundir import default_run_dir  # noqa: E402  (re-exported for older callers)


class Progress:
    """One line per step on stderr: step n/max, action, per-phase timings."""

    def __init__(self, quiet: bool = False, redact=None):
        self.quiet = quiet
        self.redact = redact or (lambda text: text)
        self._status: Any = None

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        kind = event.kind
        if kind == "thinking":
            self._stop()
            from deskpilot.cli.output import Elapsed

            self._status = console.status(Elapsed(f"step {event.step}/{event.max_steps}: asking the model…"))
            self._status.start()
        elif kind == "retry":
            then = "giving up" if event.giving_up else "asking again"
            console.print(f"  [yellow]reply did not parse[/yellow] ({escape(self.redact(event.error))}); {then}")
        elif kind == "step":
            self._stop()
            rec = event.record
            t = rec.timings_ms
            phases = " ".join(f"{k} {t[k]:.0f}ms" for k in ("capture", "model", "parse") if k in t)
            where = " ".join(f"({x},{y})" for x, y in rec.points)
            text = self.redact(rec.action_text)
            call = escape(text if len(text) <= 60 else text[:57] + "...")
            denied = "" if rec.policy.allowed else f" [red]blocked: {escape(rec.policy.reason)}[/red]"
            denied += " [cyan](from the cache)[/cyan]" if rec.cached else ""
            console.print(f"step {event.step}/{event.max_steps}  [bold]{rec.action.type}[/bold] {where}"
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
    from deskpilot.agent.loop.answers import AnswerSchema
    from deskpilot.agent.records.cache import RunCache
    from deskpilot.agent.checks import parse_checks
    from deskpilot.agent.loop.agent import Agent
    from deskpilot.agent.records.report import build_report
    from deskpilot.agent.records.rundir import claim_run_dir
    from deskpilot.agent.desk.session import Session

    backend = cfg.make_backend()
    dialect = cfg.make_dialect()
    output_schema = AnswerSchema.from_file(cfg.output_schema) if cfg.output_schema is not None else None
    settings = cfg.loop
    claim_run_dir(run_dir, create=False)
    progress = Progress(quiet, redact=dialect.redact)

    terminal = sys.stdin.isatty()
    cache = RunCache(cfg.cache, task) if cfg.cache else None  # a bad cache path: one line before the sandbox starts
    if not quiet:
        console.print(f"starting a {spec.size[0]}x{spec.size[1]} sandbox ({spec.isolation}); "
                      f"recording to {run_dir}")
    try:
        from deskpilot.live import watch

        with Session(spec=spec) as desk:
            from deskpilot.cli.person import make_ask_user, make_confirm, person_handover

            handover = person_handover(desk.sandbox, spec) if live is not None else None
            confirm = make_confirm(handover, terminal, dialect.redact, progress.pause) if cfg.confirm else None
            ask_user = make_ask_user(handover, terminal, progress.pause)
            with watch(desk.sandbox, live=live, record=record, say=lambda m: console.print(m, soft_wrap=True),
                       handover=handover) as watcher:
                def on_event(event) -> None:
                    progress(event)
                    watcher(event)

                with Agent(backend, desk, dialect, run_dir=run_dir, policy=cfg.policy, settings=settings,
                           confirm=confirm, on_event=on_event, output_schema=output_schema,
                           run_info={"model": cfg.backend.model, "base_url": cfg.backend.base_url,
                                     "script": str(cfg.backend.script) if cfg.backend.script else None,
                                     "flavor": cfg.backend.flavor,
                                     "prompt_template": str(cfg.backend.prompt_template)
                                     if cfg.backend.prompt_template else None,
                                     "instructions": cfg.instructions, "secrets": sorted(cfg.secrets)},
                           checks=parse_checks(cfg.checks), check_base=Path.cwd(),
                           cache=cache, handover=handover,
                           ask_user=ask_user) as agent:
                    result = agent.run(task)
    finally:
        backend.close()
        if (run_dir / "trajectory.jsonl").is_file() and not (run_dir / "report.html").is_file():
            try:
                build_report(run_dir)
            except OSError as exc:  # e.g. the disk filled up: the trajectory is intact, say so in one line
                console.print(f"[yellow]warning:[/yellow] could not write {run_dir / 'report.html'}: "
                              f"{exc.strerror or exc}; `deskpilot report {run_dir}` rebuilds it")
    return result


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def run_or_exit(cfg: RunConfig, task: str, spec, run_dir: Path, quiet: bool, **watch):
    """execute_run, with user mistakes, Ctrl-C and SIGTERM turned into messages and exit codes."""
    import signal

    signal.signal(signal.SIGTERM, _raise_interrupt)  # `timeout`, CI cancels: end the run cleanly too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored (background job)
    try:
        result = execute_run(cfg, task, spec, run_dir, quiet=quiet, **watch)
        from deskpilot.agent.dialects import GLM45VDialect

        redact = GLM45VDialect(secrets=cfg.secrets).redact  # the same in every dialect
        return result.model_copy(update={"answer": redact(result.answer) if result.answer else result.answer,
                                         "reason": redact(result.reason)})
    except _user_errors() as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/yellow]; what was recorded is in {run_dir} "
                      f"(report: {run_dir / 'report.html'})")
        raise typer.Exit(130) from None


def _default(path: str) -> str:
    """A setting's default, for --help (read off the spec, so it cannot drift)."""
    value: object = RunConfig()
    for part in path.split("."):
        value = getattr(value, part)
    if isinstance(value, tuple):
        value = ",".join(map(str, value)) or "none"
    return f"\\[default: {value}]"


def run(
    task: str = typer.Argument(..., help="What the agent should do, in plain words."),
    app: list[str] = typer.Option([], "--app", help="App to start in the sandbox (repeatable), e.g. --app xterm \\[default: none]"),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1"),
    model: Optional[str] = typer.Option(None, help=f"Served model name {_default('backend.model')}"),
    flavor: Optional[str] = typer.Option(None, help=f"Server kind: auto (detects what the server refuses), vllm, sglang, zai, openai, transformers {_default('backend.flavor')}"),
    script: Optional[Path] = typer.Option(None, help="JSON list of recorded replies to use instead of a model"),
    dialect: Optional[str] = typer.Option(None, help=f"Prompt and answer format: glm-4.5v, glm-4.1v, glm-5v {_default('backend.dialect')}"),
    prompt_template: Optional[Path] = typer.Option(None, help="jinja2 file replacing the built-in prompt wording (variables: docs/prompt-templates.md) \\[default: none]"),
    output_schema: Optional[Path] = typer.Option(None, help="JSON Schema the DONE(answer=...) must match; checked, asked again once \\[default: none]"),
    thinking: Optional[bool] = typer.Option(None, "--thinking/--no-thinking", help="Thinking mode \\[default: the dialect's, on]"),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens the model may answer with per step \\[default: the dialect's, 8192]"),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature \\[default: the dialect's, 0.001 for glm-4.5v]"),
    top_p: Optional[float] = typer.Option(None, help="Nucleus sampling \\[default: the dialect's]"),
    max_steps: Optional[int] = typer.Option(None, help=f"Step limit {_default('policy.max_steps')}"),
    step_timeout: Optional[float] = typer.Option(None, help=f"Seconds one step may take {_default('policy.step_timeout_s')}"),
    run_timeout: Optional[float] = typer.Option(None, help=f"Seconds the whole run may take {_default('policy.run_timeout_s')}"),
    stuck_repeats: Optional[int] = typer.Option(None, help=f"Stop after this many identical actions on an unchanged screen {_default('policy.stuck_repeats')}"),
    parse_retries: Optional[int] = typer.Option(None, help=f"Times to ask again after a reply that does not parse {_default('loop.parse_retries')}"),
    size: Optional[str] = typer.Option(None, help=f"Screen size WIDTHxHEIGHT {_default('desktop.size')}"),
    share: list[Path] = typer.Option([], "--share", help="Host folder bound read-write at the same path (repeatable) \\[default: none]"),
    isolation: Optional[str] = typer.Option(None, help=f"bwrap or none {_default('desktop.isolation')}"),
    network: Optional[bool] = typer.Option(None, "--network/--no-network", help="Let apps reach the network \\[default: no]"),
    unsafe_no_isolation: Optional[bool] = typer.Option(
        None, "--unsafe-no-isolation", help="Allow --isolation none while an API key or secret is set (apps can read them)"),
    maximize: Optional[bool] = typer.Option(None, "--maximize/--no-maximize", help="Start app windows maximized \\[default: maximized]"),
    out: Optional[Path] = typer.Option(None, help="Run folder \\[default: runs/DATE-TASK]"),
    dry_run: Optional[bool] = typer.Option(None, "--dry-run", help="Parse and record, never act \\[default: off]"),
    confirm: Optional[bool] = typer.Option(None, "--confirm", help="Ask on the terminal before each action \\[default: off]"),
    allow_key: list[str] = typer.Option([], "--allow-key", help="Only these key chords may be pressed (repeatable) \\[default: any]"),
    deny_key: list[str] = typer.Option([], "--deny-key", help="Key chord never to press, e.g. ctrl+alt+delete (repeatable) \\[default: none]"),
    allow_region: list[str] = typer.Option([], "--allow-region", help="Only touch inside these pixel regions x1,y1,x2,y2 (repeatable) \\[default: anywhere]"),
    deny_region: list[str] = typer.Option([], "--deny-region", help="Pixel region x1,y1,x2,y2 never to touch (repeatable) \\[default: none]"),
    on_violation: Optional[str] = typer.Option(None, help=f"When the policy blocks an action: stop the run, or skip the action and tell the model {_default('policy.on_violation')}"),
    secret: list[str] = typer.Option([], "--secret", help="Name of an environment variable whose value the model may use; kept out of logs (repeatable)"),
    instructions: Optional[str] = typer.Option(None, help="Extra instructions added to every prompt \\[default: none]"),
    config: Optional[Path] = typer.Option(None, help="TOML config file \\[default: ./deskpilot.toml if present]"),
    image_budget: Optional[str] = typer.Option(None, help="Per screenshot: tokens (1200), pixels (1000000px) or a size (1280x720); history screenshots shrink in proportion \\[default: full size]"),
    history_images: Optional[int] = typer.Option(None, help="Earlier screenshots shown in the prompt \\[default: 4]"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output"),
    json_out: bool = typer.Option(False, "--json", help="Print the result as one JSON object on stdout (status, answer, "
                                  "reason, steps, run_dir, report, error_kind, exit_code, totals, checks)"),
    live: Optional[int] = live_option("the screen"),
    live_port: int = live_port_option(),
    vnc: Optional[int] = vnc_option(),
    view_only: bool = view_only_option(),
    record: Optional[Path] = typer.Option(None, "--record", metavar="FILE",
                                          help="Save a video of the screen with the actions drawn (.mp4, .webm or .gif)"),
    expect_text: list[str] = typer.Option([], "--expect-text", help="Check after DONE: this text is on screen (OCR)"),
    expect_file: list[str] = typer.Option([], "--expect-file", help="Check after DONE: PATH:contains:TEXT, PATH:regex:RE or PATH:exists"),
    expect: list[str] = typer.Option([], "--expect", help="Check after DONE: the model agrees with this statement about the screen"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Cached-run file: reuse its actions while the screen matches"),
) -> None:
    """Run the agent on TASK in a fresh sandbox.

    With checks (--expect-*, or `checks` in the config) the run ends PASSED
    only if the model said DONE and every check passed, FAILED otherwise.
    The result goes to stdout (one line, or one JSON object with --json), progress to stderr.
    Exit codes: 0 DONE or PASSED; 1 FAIL, FAILED, MAX_STEPS or STOPPED; 2 usage error or other ERROR;
    3 the model's replies never parsed; 4 the model server is unreachable or refused;
    5 NEEDS_USER (the model asked the person a question and none was attached: no terminal, no page); 130 interrupted.
    """
    try:
        require_utf8(task, "the task")
        cfg = load_config(
            {"apps": app, "base_url": base_url, "model": model, "flavor": flavor, "script": script,
             "thinking": thinking, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
             "dialect": dialect, "prompt_template": prompt_template, "output_schema": output_schema,
             "max_steps": max_steps, "step_timeout": step_timeout, "run_timeout": run_timeout,
             "stuck_repeats": stuck_repeats, "parse_retries": parse_retries, "size": size, "shares": share,
             "isolation": isolation, "network": network, "unsafe_no_isolation": unsafe_no_isolation, "maximize": maximize, "out": out, "dry_run": dry_run, "confirm": confirm,
             "allow_keys": allow_key or None, "deny_keys": deny_key, "allow_regions": allow_region or None,
             "deny_regions": deny_region, "on_violation": on_violation, "instructions": instructions,
             "cache": cache, "image_budget": image_budget, "history_images": history_images,
             **vnc_settings(vnc, view_only)},
            config_file=config, secret_names=secret)
        from deskpilot.agent.checks import expect_file_flag

        flagged = ([{"text_visible": t} for t in expect_text] + [expect_file_flag(f).spec() for f in expect_file]
                   + [{"expect": e} for e in expect])
        cfg = cfg.model_copy(update={"checks": cfg.checks + flagged})
        if cfg.confirm and not sys.stdin.isatty() and live is None and not live_port:
            raise ConfigError("--confirm needs a terminal or the live page (--live) to ask on")
        spec = cfg.session_spec()
        run_dir = cfg.out or default_run_dir(task, None)
        if record is not None:
            from deskpilot.live.record import check_target

            check_target(record)
    except _user_errors() as err:
        raise fail(str(err)) from None
    result = run_or_exit(cfg, task, spec, run_dir, quiet, live=live_port_of(live, live_port), record=record)
    from deskpilot.cli.output import exit_code, print_result

    print_result(result, run_dir, console, as_json=json_out)
    raise typer.Exit(exit_code(result))


def demo(
    base_url: Optional[str] = typer.Option(None, help="Run the demo against a live model instead of the bundled replies"),
    model: Optional[str] = typer.Option(None, help="Served model name \\[default: glm-4.5v]"),
    flavor: Optional[str] = typer.Option(None, help="Server kind: auto (default), vllm, sglang, zai, openai, transformers"),
    dialect: Optional[str] = typer.Option(None, help="Prompt and answer format: glm-4.5v (default), glm-4.1v, glm-5v"),
    prompt_template: Optional[Path] = typer.Option(None, help="jinja2 file replacing the built-in prompt wording"),
    thinking: Optional[bool] = typer.Option(None, "--thinking/--no-thinking"),
    max_tokens: Optional[int] = typer.Option(None, help="Most tokens the model may answer with per step"),
    temperature: Optional[float] = typer.Option(None, help="Sampling temperature \\[default: the dialect's]"),
    step_timeout: Optional[float] = typer.Option(None, help="Seconds one step (the model call included) may take"),
    size: str = typer.Option("1280x800", help="Screen size WIDTHxHEIGHT"),
    out: Optional[Path] = typer.Option(None, help="Run folder \\[default: runs/DATE-demo]"),
    isolation: str = typer.Option("bwrap", help="bwrap (default) or none"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Fill and save the bundled demo form, end to end, and check the saved file."""
    from deskpilot.agent.desk.session import SessionSpec
    from deskpilot.demo import DEMO_REPLIES, DEMO_TASK, demo_app

    try:
        run_dir = (out or default_run_dir("demo", None)).resolve()
        shared = run_dir / "output"
        shared.mkdir(parents=True, exist_ok=True)
        saved = shared / "form.json"
        cli = {"base_url": base_url, "model": model, "flavor": flavor, "dialect": dialect,
               "prompt_template": prompt_template, "thinking": thinking, "max_tokens": max_tokens,
               "temperature": temperature, "step_timeout": step_timeout, "size": size, "isolation": isolation,
               "script": None if base_url else DEMO_REPLIES, "max_steps": 15}
        cfg = load_config(cli, config_file=None, env={})  # the API key still comes from the environment
        spec = SessionSpec(size=cfg.screen, isolation=cfg.desktop.isolation, shares=[str(shared)],
                           apps=[demo_app(saved)])
    except _user_errors() as err:
        raise fail(str(err)) from None
    result = run_or_exit(cfg, DEMO_TASK, spec, run_dir, quiet)
    from deskpilot.cli.output import exit_code, print_result

    print_result(result, run_dir, console)
    expected = {"name": "Ada Lovelace", "email": "ada@example.org"}
    got = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else None
    if got == expected:
        console.print(f"[green]checked:[/green] {saved} holds {json.dumps(got)}")
        raise typer.Exit(exit_code(result))
    console.print(f"[red]check failed:[/red] {saved} holds {got!r}, expected {expected!r}")
    raise typer.Exit(1)
