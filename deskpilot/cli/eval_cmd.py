"""`deskpilot eval SUITE`: run a task suite on many sandboxes at once (or on a Ray cluster)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Optional

import typer
from deskpilot.cli.live_option import live_option, live_port_option, view_only_option, vnc_option, vnc_settings
from deskpilot.cli.live_option import live_port as live_port_of
from deskpilot.cli.run import _user_errors, fail
from deskpilot.agent.config.spec import load_config
from deskpilot.errors import ConfigError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

console = Console(stderr=True, highlight=False, soft_wrap=True)


class EvalProgress:
    """The live view: done / running / failed, success so far, and one line per finished attempt."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.planned = self.done = self.passed = self.failed = 0
        self.running: dict[str, int] = {}  # "id~n" -> current step
        self._live: Live | None = None

    def _view(self) -> Text:
        rate = f"{self.passed / self.done:.0%}" if self.done else "-"
        steps = ", ".join(f"{k} step {v}" for k, v in list(self.running.items())[:4])
        more = f" +{len(self.running) - 4}" if len(self.running) > 4 else ""
        return Text(f"{self.done}/{self.planned} done · {len(self.running)} running · {self.failed} failed · "
                    f"success {rate}" + (f"   [{steps}{more}]" if steps else ""))

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "plan":
            self.planned, self.done = event["planned"], event["done"]
            if not self.quiet:
                if event["done"]:
                    console.print(f"resuming: {event['done']} attempt(s) already finished, {event['todo']} to run")
                self._live = Live(self._view(), console=console, refresh_per_second=4, transient=True)
                self._live.start()
            return
        if kind == "start":
            self.running[f"{event['task']}~{event['attempt']}"] = 0
        elif kind == "thinking" and "task" in event:
            self.running[f"{event['task']}~{event['attempt']}"] = event["step"]
        elif kind == "result":
            r = event["result"]
            self.running.pop(f"{r.id}~{r.attempt}", None)
            self.done += 1
            skipped = r.status == "SKIPPED"  # listed with its reason, neither passed nor failed
            self.passed += r.passed
            self.failed += not r.passed and not skipped
            if not self.quiet and skipped:
                console.print(f"[yellow]SKIP[/yellow] {escape(r.id)}~{r.attempt}  {escape(r.reason)}")
            elif not self.quiet:
                mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
                why = "" if r.passed else f"  {escape(r.reason or self._failed_check(r))}"
                console.print(f"{mark} {escape(r.id)}~{r.attempt}  {r.status} {r.steps} step(s) "
                              f"{r.checks_passed}/{r.checks_total} checks  {r.wall_s:.1f} s{why}")
        elif kind == "summary":
            self.stop()
            return
        if self._live is not None:
            self._live.update(self._view())

    @staticmethod
    def _failed_check(r) -> str:
        bad = next((c for c in r.checks if not c.passed), None)
        return f"check failed: {bad.detail}" if bad else ""

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class _tee:
    """Progress events to the terminal and to the live board."""

    def __init__(self, progress: EvalProgress, board):
        self.progress, self.board = progress, board

    def __call__(self, event: dict[str, Any]) -> None:
        self.progress(event)
        self.board(event)

    def stop(self) -> None:
        self.progress.stop()


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    rate = summary["success_rate"]
    line = (f"{summary['passed']}/{summary['attempts']} attempts passed"
            + (f" ({rate:.0%})" if rate is not None else "")
            + "".join(f", {k} {v:.2f}" for k, v in summary.items() if k.startswith("pass@") and k != "pass@1"))
    if summary["interrupted"]:
        line += f"; interrupted after {summary['attempts']} of {summary['planned']}"
    if summary["retried"]:
        line += f"; retried after a lost worker: {', '.join(summary['retried'])}"
    console.print(line)
    for tag, t in summary["by_tag"].items():
        console.print(f"  {escape(tag)}: {t['passed']}/{t['attempts']}")
    if summary.get("skipped"):
        console.print(f"skipped (not counted): {summary['skipped']}")
        for reason, ids in summary["skipped_by_reason"].items():
            console.print(f"  {len(ids)} x {escape(reason)}")
    if summary.get("osworld"):
        console.print(escape(summary["osworld"]["note"]))
    lat = summary["step_latency_ms"]
    console.print(f"mean steps {summary['mean_steps']}, step p50 {lat['p50']} ms p90 {lat['p90']} ms, "
                  f"tokens {summary['tokens']['prompt']} in / {summary['tokens']['completion']} out")
    console.print(f"results: {out / 'results.jsonl'}\nsummary: {out / 'summary.json'}\nindex:   {out / 'index.html'}")


def _load(path: Path, out: Path | None, *, domain: str | None, scripts: Path | None, files: Path | None,
          download: bool) -> tuple[Any, Path]:
    """(suite, out folder): a deskpilot suite, or OSWorld task files (staged into OUT/osworld/)."""
    from deskpilot.cli.run import default_run_dir
    from deskpilot.eval.osworld.tasks import Sources, is_osworld, load_osworld
    from deskpilot.eval.suite import load_suite

    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if not is_osworld(path):
        used = [name for name, v in (("--domain", domain), ("--scripts", scripts), ("--osworld-files", files),
                                     ("--osworld-download", download)) if v]
        if used:
            raise ConfigError(f"{', '.join(used)} go(es) with OSWorld task files; {path} is a deskpilot suite")
        loaded = load_suite(path)
        return loaded, (out or default_run_dir(loaded.name, Path("evals"))).resolve()
    for flag, folder in (("--scripts", scripts), ("--osworld-files", files)):
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"{flag} {folder} is not a folder")
    name = f"osworld-{path.stem if path.is_file() else path.name}" + (f"-{domain}" if domain else "")
    out_dir = (out or default_run_dir(name, Path("evals"))).resolve()
    src = Sources(files=files.resolve() if files else None, stage=out_dir / "osworld",
                  scripts=scripts.resolve() if scripts else None, network=download)
    return load_osworld(path, src, domain), out_dir


def eval_suite(
    suite: Path = typer.Argument(..., help="Suite file (YAML or JSON), or OSWorld task files: one task, "
                                            "a folder of them, or an index file next to its examples folder"),
    parallel: int = typer.Option(4, "--parallel", "-j", min=1, max=512, help="Sandboxes (attempts) at once"),
    repeat: int = typer.Option(1, "--repeat", min=1, max=1000, help="Attempts per task (pass@k)"),
    out: Path | None = typer.Option(None, help="Output folder [default: evals/DATE-SUITE]"),
    resume: bool = typer.Option(False, "--resume", help="Skip attempts already in OUT/results.jsonl"),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible server shared by all attempts; "
                                           "without it, each task's scripted replies are used"),
    model: str | None = typer.Option(None, help="Served model name [default: glm-4.5v]"),
    flavor: str | None = typer.Option(None, help="Server kind: vllm, sglang, zai, openai, transformers"),
    thinking: bool | None = typer.Option(None, "--thinking/--no-thinking", help="Thinking mode [default: on]"),
    dialect: str | None = typer.Option(None, help="Prompt and answer format: glm-4.5v (default), glm-4.1v, glm-5v"),
    secret: list[str] = typer.Option([], "--secret", help="Name of an environment variable whose value the model "
                                     "may use; kept out of logs and results (repeatable)"),
    model_concurrency: int | None = typer.Option(None, help="Model calls in flight at most [default: --parallel]"),
    warm: int = typer.Option(1, help="Desks kept ready per distinct desktop"),
    ray: str | None = typer.Option(None, "--ray", help="Run each attempt as a Ray task: 'auto' or a cluster address"),
    ray_shared_out: bool = typer.Option(False, "--ray-shared-out", help="With --ray: --out is on a file system "
                                        "every node mounts at the same path; workers write run folders there"),
    config: Path | None = typer.Option(None, help="TOML config file [default: ./deskpilot.toml if present]"),
    domain: str | None = typer.Option(None, help="OSWorld: only the tasks of this domain (e.g. libreoffice_calc)"),
    scripts: Path | None = typer.Option(None, help="OSWorld: folder of TASK_ID.json reply lists (runs without a model)"),
    osworld_files: Path | None = typer.Option(None, "--osworld-files", help="OSWorld: its file cache folder "
                                              "(CACHE/TASK_ID/...), as OSWorld's own runs leave it"),
    osworld_download: bool = typer.Option(False, "--osworld-download", help="OSWorld: download files missing from "
                                          "--osworld-files on this host (never inside a sandbox)"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output"),
    live: Optional[int] = live_option("every running attempt's desktop (a grid)", "; local runs only, not with --ray"),
    live_port: int = live_port_option(),
    vnc: Optional[int] = vnc_option("every desk (each its own port and password; local runs only)"),
    view_only: bool = view_only_option(),
) -> None:
    """Run every task of SUITE (each on a fresh sandbox), check the outcomes, and summarize."""
    from deskpilot.eval.runner import EvalSettings, Evaluation

    if ray_shared_out and not ray:
        raise fail("--ray-shared-out goes with --ray (a local evaluation writes to --out anyway)")
    try:
        cfg = load_config({"base_url": base_url, "model": model, "flavor": flavor, "thinking": thinking,
                           "dialect": dialect, **vnc_settings(vnc, view_only)}, config_file=config, secret_names=secret)
        if vnc is not None and ray:
            raise ConfigError("--vnc serves the desks of a local evaluation; with --ray they run on other machines")
        if vnc:  # desks (also warm ones) overlap in time
            raise ConfigError("eval gives each desk its own VNC port: use --vnc without a port number")
        settings = EvalSettings(parallel=parallel, repeat=repeat, resume=resume, model_concurrency=model_concurrency,
                                warm=warm, vnc=cfg.session_spec().vnc)
        loaded, out_dir = _load(suite, out, domain=domain, scripts=scripts, files=osworld_files,
                                download=osworld_download)
    except _user_errors() as err:
        raise fail(str(err)) from None
    from deskpilot.agent.checks.context import updating_baselines

    if ray and updating_baselines():
        raise fail("--update-baselines writes baselines on this machine; run the suite without --ray to update them")
    progress: Any = EvalProgress(quiet)
    board = None
    if live is not None:
        if ray:
            raise fail("--live shows the desktops of a local evaluation; with --ray they run on other machines")
        from deskpilot.live.board import LiveBoard

        try:
            board = LiveBoard(port=live_port_of(live, live_port)).start()
        except _user_errors() as err:  # a busy port
            raise fail(str(err)) from None
        console.print(f"live view: {board.url}", soft_wrap=True)
        progress = _tee(progress, board)
    if not quiet:
        where = f"Ray ({ray})" if ray else f"{parallel} sandbox(es) at once"
        console.print(f"{loaded.name}: {len(loaded.tasks)} task(s) x {repeat} on {where}; writing to {out_dir}")
    try:
        if ray:
            from deskpilot.eval.ray_runner import RayEvaluation

            summary = RayEvaluation(loaded, cfg, out_dir, settings, progress=progress, address=ray,
                                    shared_out=ray_shared_out).run()
        else:
            summary = asyncio.run(Evaluation(loaded, cfg, out_dir, settings, progress=progress).run())
    except _user_errors() as err:
        progress.stop()
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        progress.stop()
        console.print(f"[yellow]interrupted[/yellow]; finished attempts are in {out_dir / 'results.jsonl'}")
        raise typer.Exit(130) from None
    finally:
        if board is not None:
            board.stop()
    if not quiet:
        _print_summary(summary, out_dir)
    if summary["interrupted"]:
        raise typer.Exit(130)
    raise typer.Exit(0 if summary["passed"] == summary["attempts"] and summary["attempts"] else 1)
