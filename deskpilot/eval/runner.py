"""Runs a suite: every task attempt on its own fresh desktop, many at once, one shared model.

One asyncio event loop drives up to ``parallel`` attempts. Each attempt leases
a ready desk from a SandboxPool (one pool per distinct desktop), runs a
normal Agent into its own run folder (``OUT/runs/ID~N``), evaluates the
task's checks on the live desk, copies its shared folders into the run
folder, and appends one fsynced line to ``OUT/results.jsonl``. A live model
(``--base-url``) is one backend shared by all attempts, with a limit on
concurrent model calls; without one, each attempt answers from its task's
scripted replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deskpilot.eval.checks import for_desk, results_of
from deskpilot.eval.ready import wait_ready
from deskpilot.eval.results import (
    AttemptResult,
    append_result,
    read_results,
    summarize,
    write_index,
    write_summary,
)
from deskpilot.eval.suite import Suite, SuiteTask
from pydantic import BaseModel, Field

from deskpilot.errors import ConfigError, DeskpilotError, DeskStartError


class EvalSettings(BaseModel):
    """How to run a suite (the model and loop settings come from the usual RunConfig)."""

    parallel: int = Field(default=4, ge=1, le=512)
    repeat: int = Field(default=1, ge=1, le=1000)
    resume: bool = False
    model_concurrency: int | None = Field(default=None, ge=1)  # default: parallel
    warm: int = Field(default=1, ge=0)  # idle desks kept ready per distinct desktop
    fresh_shares: bool = True  # each attempt works on its own copy of the shared folders
    vnc: Any = None  # a VncOption: every desk gets a VNC server (its own port; one vnc:// line each on stderr)


def _special_files(folder: str, names: list[str]) -> list[str]:
    """What copytree must skip in a share an app wrote: FIFOs, sockets, devices (opening a FIFO blocks)."""
    skip = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            skip.append(name)
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skip.append(name)
    return skip


def attempt_dir(out: Path, task_id: str, attempt: int) -> Path:
    return out / "runs" / f"{task_id}~{attempt}"


DESK_LOGS = "desk-start-failures"


def keep_desk_logs(run_dir: Path, failures: list) -> list[str]:
    """The logs of desks that failed to start for this attempt -> RUN/desk-start-failures/N-FILE; their reasons."""
    for n, failure in enumerate(failures, 1):
        folder = run_dir / DESK_LOGS
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{n}-reason.txt").write_text(str(failure) + "\n", encoding="utf-8")
        for name, text in failure.logs.items():
            (folder / f"{n}-{name}").write_text(text, encoding="utf-8")
    return [str(f) for f in failures]


class LimitedBackend:
    """A shared backend with at most `limit` model calls in flight (the server's batch is finite)."""

    def __init__(self, backend, limit: int):
        self.backend = backend
        self._limit = limit
        self._sem: asyncio.Semaphore | None = None

    async def acomplete(self, request):
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._limit)
        async with self._sem:
            return await self.backend.acomplete(request)

    def complete(self, request):
        return self.backend.complete(request)

    def close(self) -> None:
        pass  # the evaluation closes the shared backend once, at the end


def task_backend(task: SuiteTask, shared):
    """The shared live backend, else the task's own scripted replies."""
    if shared is not None:
        return shared
    from deskpilot.model_backend import ScriptedBackend

    replies = task.replies()
    if not replies:
        raise ConfigError(f"task {task.id} has no script and no model was given (--base-url)")
    return ScriptedBackend(replies, keep_requests=False)


def task_spec(task: SuiteTask):
    from deskpilot.agent.desk.pool import make_spec

    d = task.desktop
    return make_spec(d.screen, d.apps, shares=d.shares, isolation=d.isolation, network=d.network)


async def run_attempt(task: SuiteTask, attempt: int, out: Path, cfg, desk, backend, *,
                      desk_s: float = 0.0, on_event: Callable[[dict], None] | None = None) -> AttemptResult:
    """One attempt on a ready desk: the agent's run, the checks, the shares kept (the caller builds the report)."""
    from deskpilot.agent.loop.agent import Agent
    from deskpilot.agent.records.report import build_report

    run_dir = attempt_dir(out, task.id, attempt)
    desk_failures = await asyncio.to_thread(keep_desk_logs, run_dir, getattr(desk, "start_failures", []))
    started = time.monotonic()
    marks: list[float] = []

    def event(e) -> None:  # the loop's typed events, passed on as dicts naming the attempt
        kind = getattr(e, "kind", None)
        if kind in ("thinking", "end"):
            marks.append(time.monotonic())
        if on_event is not None and kind is not None:
            on_event({"event": kind, "step": getattr(e, "step", None), "task": task.id, "attempt": attempt,
                      "loop_event": e})  # the typed event itself, for watchers that show thoughts and actions

    plan = task.osworld
    if plan is not None:
        from deskpilot.eval.osworld import attempt as osw

        await asyncio.to_thread(osw.setup, desk, plan, run_dir)
    policy = cfg.policy.model_copy(update={"max_steps": task.max_steps})
    info = {"session": desk.spec.model_dump(mode="json"), "model": cfg.backend.model, "base_url": cfg.backend.base_url,
            "eval": {"task": task.id, "attempt": attempt, "tags": task.tags, "checks": task.checks}}
    if task.ready is not None:
        await asyncio.to_thread(wait_ready, desk, task.ready)
    dialect = cfg.make_dialect()
    checks_here = for_desk(desk, task.checks)  # paths are absolute: resolved when the suite loaded
    if plan is not None:
        osw.use_platform(dialect)
        info["eval"]["osworld"] = {"domain": plan.domain, "infeasible": plan.infeasible}
    agent = Agent(backend, desk.sandbox, dialect, run_dir=run_dir, policy=policy, settings=cfg.loop,
                  on_event=event, capturer=desk.capturer, executor=desk.executor, run_info=info, report=False,
                  checks=checks_here, check_shares=[*desk.shares.values()])
    if plan is not None and plan.postconfig:
        agent.before_checks = osw.before_checks(desk, plan, checks_here)  # type: ignore[attr-defined]
    try:
        result = await agent.arun(task.task)  # checks run inside, after DONE: PASSED or FAILED
    except BaseException:  # interrupted: the run folder still gets its report
        agent.close()
        with contextlib.suppress(Exception):
            build_report(run_dir)
        raise
    await asyncio.to_thread(agent.close)  # file closes and fsyncs: not on the loop's time
    redact = getattr(agent.dialect, "redact", str)  # results.jsonl holds no more than the run's logs
    checks = [c.model_copy(update={"detail": redact(c.detail)}) for c in results_of(task.checks, result.checks)]
    for inside, host in desk.shares.items():  # what the apps left in the shares stays with the run
        if host != Path(inside):
            await asyncio.to_thread(shutil.copytree, host, run_dir / "shares" / Path(inside).name,
                                    symlinks=True, dirs_exist_ok=True, ignore=_special_files)
    totals = result.totals
    passed = sum(c.passed for c in checks)
    status, ok, reason = result.status.value, result.status.value in ("DONE", "PASSED") and passed == len(task.checks), \
        result.reason
    if plan is not None:
        status, ok, reason = osw.verdict(plan, status, reason, passed == len(task.checks))
    return AttemptResult(
        id=task.id, attempt=attempt, status=status, passed=ok,
        checks_passed=passed, checks_total=len(task.checks), checks=checks, reason=redact(reason),
        steps=result.steps, prompt_tokens=int(totals.get("prompt_tokens", 0)),
        completion_tokens=int(totals.get("completion_tokens", 0)),
        image_tokens=int(totals.get("image_tokens", 0)), image_tokens_default=int(totals.get("image_tokens_default", 0)),
        prompt_tokens_est=int(totals.get("prompt_tokens_est", 0)), prefix_tokens_est=int(totals.get("prefix_tokens_est", 0)),
        model_s=round(float(totals.get("model_ms", 0)) / 1000, 3), wall_s=round(time.monotonic() - started + desk_s, 3),
        desk_s=round(desk_s, 3), step_ms=[round((b - a) * 1000, 1) for a, b in zip(marks, marks[1:])],
        tags=task.tags, run_dir=str(run_dir.relative_to(out)),
        desk_start_failures=len(desk_failures), desk_start_errors=desk_failures,
    )


def skipped_attempt(task: SuiteTask, attempt: int) -> AttemptResult | None:
    """The result of a task that cannot run here (an OSWorld task needing what is not implemented), else None."""
    if task.osworld is None or not task.osworld.skip:
        return None
    return AttemptResult(id=task.id, attempt=attempt, status="SKIPPED", passed=False, reason=task.osworld.skip,
                         tags=task.tags)


def suite_info(suite: Suite) -> dict[str, Any]:
    """Extra summary fields a suite's kind of tasks brings (OSWorld: platform line, app versions)."""
    if any(t.osworld is not None for t in suite.tasks):
        from deskpilot.eval.osworld.attempt import summary_info

        return {"osworld": summary_info()}
    return {}


def finish_run(run_dir: Path) -> None:
    """The report of a finished attempt (built after its desk went back to the pool)."""
    from deskpilot.agent.records.report import build_report

    if (run_dir / "trajectory.jsonl").is_file():
        build_report(run_dir)


def failed_attempt(task: SuiteTask, attempt: int, out: Path, error: BaseException, wall_s: float) -> AttemptResult:
    run_dir = attempt_dir(out, task.id, attempt)
    failures = keep_desk_logs(run_dir, error.failures) if isinstance(error, DeskStartError) else []
    kept = (run_dir / "trajectory.jsonl").is_file() or (run_dir / DESK_LOGS).is_dir()
    reason = str(error) or error.__class__.__name__
    if failures:
        reason = f"the desktop failed to start {len(failures)} time(s) (logs in {DESK_LOGS}/): {reason}"
    return AttemptResult(id=task.id, attempt=attempt, status="ERROR", passed=False, checks_total=len(task.checks),
                         reason=reason, wall_s=round(wall_s, 3), tags=task.tags,
                         run_dir=str(run_dir.relative_to(out)) if kept else "",
                         desk_start_failures=len(failures), desk_start_errors=failures)


def plan(suite: Suite, repeat: int, out: Path, resume: bool) -> tuple[list[tuple[SuiteTask, int]], list[AttemptResult]]:
    """Attempts still to run (round by round, so early results cover every task) and those done."""
    done = read_results(out)
    if done and not resume:
        raise ConfigError(f"{out} already holds an evaluation ({len(done)} results): use --resume, or another --out")
    finished = {(r.id, r.attempt) for r in done}
    todo = [(t, a) for a in range(1, repeat + 1) for t in suite.tasks if (t.id, a) not in finished]
    for task, attempt in todo:  # a run folder without a result line was interrupted: keep it aside
        folder = attempt_dir(out, task.id, attempt)
        if folder.exists():
            n = 1
            while (aside := folder.with_name(f"{folder.name}.interrupted{n}")).exists():
                n += 1
            folder.rename(aside)
    known = suite.by_id()
    return todo, [r for r in done if r.id in known]


class Evaluation:
    """A suite run on this machine. `run()` returns the summary (also written to OUT)."""

    def __init__(self, suite: Suite, cfg, out: Path, settings: EvalSettings | None = None,
                 progress: Callable[[dict], None] | None = None):
        self.suite, self.cfg, self.out = suite, cfg, Path(out)
        from deskpilot.agent.config.spec import refuse_unisolated

        for task in suite.tasks:  # a task's own desktop may ask for isolation none
            refuse_unisolated(task.desktop.isolation, task.desktop.unsafe_no_isolation or cfg.desktop.unsafe_no_isolation,
                              api_key=cfg.backend.api_key, secrets=cfg.secrets)
        self.settings = settings or EvalSettings()
        self.progress = progress or (lambda e: None)
        self.results: list[AttemptResult] = []
        self._pools: dict[str, Any] = {}
        from deskpilot.agent.desk.pool import max_starting

        self._gate = threading.BoundedSemaphore(max_starting())  # desks starting at once, all pools together

    def _look_ahead(self) -> None:
        """Warm desks for the attempts next in the queue (their sandboxes start while others run)."""
        ahead: dict[str, tuple[Any, int]] = {}
        for task, _ in [q for q in self._queue if skipped_attempt(*q) is None][: max(1, self.settings.parallel // 2)]:
            spec = task_spec(task)
            key = spec.model_dump_json()
            ahead[key] = (spec, ahead.get(key, (spec, 0))[1] + 1)
        for key, pool in self._pools.items():
            if key not in ahead:
                pool.set_warm(0)
        for key, (spec, count) in ahead.items():
            self._pool(spec, key).set_warm(min(count, self.settings.warm))

    def _pool(self, spec, key: str):
        """The pool of this desktop; it keeps `warm` desks ready while attempts on it remain."""
        from deskpilot.agent.desk.pool import SandboxPool

        if key not in self._pools:
            spec = spec.model_copy(update={"vnc": self.settings.vnc})
            self._pools[key] = SandboxPool(spec=spec, warm=0, max=self.settings.parallel,
                                           fresh_shares=self.settings.fresh_shares,
                                           builders=max(1, min(4, self.settings.warm)), start_gate=self._gate)
        return self._pools[key]

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2 * self.settings.parallel + 4))
        me = asyncio.current_task()
        if me is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, me.cancel)
        self.out.mkdir(parents=True, exist_ok=True)
        todo, self.results = plan(self.suite, self.settings.repeat, self.out, self.settings.resume)
        planned = len(todo) + len(self.results)
        shared = None
        if self.cfg.backend.base_url:
            shared = LimitedBackend(self.cfg.server_backend(), self.settings.model_concurrency or self.settings.parallel)
        gate = asyncio.Semaphore(self.settings.parallel)
        self.progress({"event": "plan", "planned": planned, "done": len(self.results), "todo": len(todo)})
        started = time.monotonic()

        async def on_desk(task: SuiteTask, attempt: int, t0: float) -> AttemptResult:
            try:
                spec = task_spec(task)
                async with self._pool(spec, spec.model_dump_json()).alease() as desk:
                    self._look_ahead()
                    self.progress({"event": "desk", "task": task.id, "attempt": attempt, "desk": desk})
                    return await run_attempt(task, attempt, self.out, self.cfg, desk, task_backend(task, shared),
                                             desk_s=time.monotonic() - t0, on_event=self.progress)
            except (DeskpilotError, OSError) as err:
                return failed_attempt(task, attempt, self.out, err, time.monotonic() - t0)

        async def one(task: SuiteTask, attempt: int) -> None:
            async with gate:  # `parallel` desks in use at most; the report is built after
                self._queue.remove((task, attempt))
                t0 = time.monotonic()
                self.progress({"event": "start", "task": task.id, "attempt": attempt})
                result = skipped_attempt(task, attempt) or await on_desk(task, attempt, t0)
            if result.run_dir:
                await asyncio.to_thread(finish_run, self.out / result.run_dir)
            append_result(self.out, result)
            self.results.append(result)
            self.progress({"event": "result", "result": result})

        self._queue = list(todo)
        jobs = [asyncio.ensure_future(one(t, a)) for t, a in todo]
        interrupted = False
        try:
            await asyncio.gather(*jobs)
        except asyncio.CancelledError:
            interrupted = True
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)  # each agent writes its end record
        finally:
            for pool in self._pools.values():
                await asyncio.to_thread(pool.close)
            if shared is not None:
                with contextlib.suppress(Exception):
                    await shared.backend.aclose()
                shared.backend.close()
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGTERM)
        summary = summarize(self.results, suite=self.suite.name, repeat=self.settings.repeat, planned=planned,
                            interrupted=interrupted, wall_s=round(time.monotonic() - started, 2))
        summary.update(suite_info(self.suite))
        write_summary(self.out, summary)
        write_index(self.out, self.results, summary)
        self.progress({"event": "summary", "summary": summary})
        return summary
