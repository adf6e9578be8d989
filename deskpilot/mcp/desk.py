"""One MCP client's desktop: a sandbox, its run folder, and one thread that touches it.

Every tool call goes through `DeskSession.call`, which runs it on the
session's own worker thread (the capturer, executor and X connections stay on
one thread, and two calls never interleave) and records it in the run folder:
an `mcp_call` line per call, and for actions a normal step record written
before the action is performed, so `deskpilot report` shows an MCP session
like any run.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import BaseModel, Field

from deskpilot.actions.models import Action
from deskpilot.agent.loop.events import StepDecided
from deskpilot.agent.records.models import ActedRecord, EndRecord, Status, StepRecord
from deskpilot.agent.records.trajectory import Trajectory, now_iso
from deskpilot.errors import UsageError

if TYPE_CHECKING:
    from deskpilot.agent.desk.session import Session


class McpOptions(BaseModel):
    """How `deskpilot mcp` sets up each client's sandbox and model."""

    size: tuple[int, int] = (1280, 800)
    apps: list[str] = Field(default_factory=list)
    isolation: Literal["bwrap", "none"] = "bwrap"
    network: bool = False
    shares: list[str] = Field(default_factory=list)
    out: Path = Path("runs")
    run_config: Any = None  # a RunConfig: model, endpoint, policy for locate/ask/run_task
    live: Any = None  # a LiveView to publish frames and events to


SESSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SessionRules(BaseModel):
    """How the desktops of one server are handed out and taken back."""

    http: bool = False  # stdio: one client, one desktop, no limits
    idle_timeout_s: float | None = 300.0  # close a desktop after this long without a call
    max_sessions: int | None = 4  # open desktops at most
    session_name: str | None = None  # the named desktop of requests without the header


def check_session_name(name: str) -> str:
    if not SESSION_NAME.fullmatch(name):
        raise ValueError(f"session name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


class McpCallRecord(BaseModel):
    """One tool call as the client made it, and what came back."""

    kind: Literal["mcp_call"] = "mcp_call"
    time: str
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    ms: float = 0.0


def _new_run_dir(base: Path, name: str | None = None) -> Path:
    from deskpilot.agent.records.rundir import default_run_dir

    return default_run_dir(f"mcp-{name}" if name else "mcp", base)


class DeskSession:
    """The sandbox of one MCP session; opened lazily, closed when the client goes."""

    def __init__(self, options: McpOptions, name: str | None = None):
        self.options = options
        self.name = name  # a named desktop (shared across client processes), else None
        self.run_dir = _new_run_dir(options.out, name)
        self.busy = 0  # tool calls in progress: a desktop is never closed for idleness during one
        self.last_used = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deskpilot-mcp")
        self._desk: Session | None = None  # a deskpilot.Sandbox, once opened
        self._backend: Any = None
        self.trajectory: Trajectory | None = None
        self._step = self._tasks = self._queries = 0
        self._closed = False

    # -- running on the session thread -------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any], fn: Callable[[], Any], summary=None) -> Any:
        """Run `fn` on the session thread and record the call (also when it fails)."""
        if self._closed:
            raise UsageError("this MCP session's sandbox is closed")
        started = time.perf_counter()
        self.busy += 1
        try:
            future = self._pool.submit(self._recorded, tool, arguments, fn, summary, started)
            return await asyncio.wrap_future(future)
        finally:
            self.busy -= 1
            self.last_used = time.monotonic()

    def _recorded(self, tool, arguments, fn, summary, started):
        error, result = None, None
        try:
            self._open()
            result = fn()
            return result
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            shown = summary(result) if summary and error is None else (result if error is None else None)
            if self.trajectory is not None:
                self.trajectory.append(McpCallRecord(time=now_iso(), tool=tool, arguments=arguments, result=shown,
                                                     error=error, ms=round((time.perf_counter() - started) * 1000, 2)))

    def _open(self) -> None:
        if self._desk is not None:
            return
        from deskpilot.agent.desk.session import Session, SessionSpec, app_from_command

        opts = self.options
        vnc = opts.run_config.session_spec().vnc if opts.run_config is not None else None  # --vnc: its line on stderr
        spec = SessionSpec(size=opts.size, isolation=opts.isolation, network=opts.network, shares=opts.shares,
                           apps=[app_from_command(a) for a in opts.apps], vnc=vnc)
        if self.trajectory is None:  # once per session, also if a first start of the sandbox failed
            backend = getattr(opts.run_config, "backend", None)
            self.trajectory = Trajectory(self.run_dir)
            self.trajectory.write_settings({"task": "(MCP session: actions chosen by the MCP client)",
                                            "dialect": "mcp", "backend": "MCP client",
                                            "model": getattr(backend, "model", None),
                                            "base_url": getattr(backend, "base_url", None),
                                            "session": spec.model_dump(mode="json"), "screen_size": list(opts.size)})
        self._desk = Session(spec=spec)
        if opts.live is not None:
            opts.live.attach(self._desk.sandbox)

    @property
    def desk(self) -> "Session":
        if self._desk is None:
            raise UsageError("this MCP session's sandbox is not open")
        return self._desk

    @property
    def record(self) -> Trajectory:
        if self.trajectory is None:
            raise UsageError("this MCP session's run folder is not open")
        return self.trajectory

    # -- what the tools do (on the session thread) -------------------------------------
    def screenshot_png(self) -> bytes:
        from deskpilot.perception.encode import encode_png

        return encode_png(self.desk.screenshot())

    @property
    def size(self) -> tuple[int, int]:
        return self.desk.size if self._desk is not None else self.options.size

    def act(self, action: Action, text: str) -> str:
        """Validate, record, perform, wait for the screen to settle."""
        self.desk.executor.validate(action)
        self._step += 1
        obs = self.desk.observe()
        shot = self.record.save_screenshot(obs.image, f"step_{self._step:03d}.png")
        record = StepRecord(step=self._step, time=now_iso(), screenshot=shot, screen_size=obs.size,
                            thought="(chosen by the MCP client)", action=action,
                            action_text=text, points=action.points())
        self.record.append(record)
        self._publish(StepDecided(step=self._step, max_steps=0, record=record))
        t = time.perf_counter()
        error = None
        try:
            self.desk.perform(action)  # performs, then waits for the screen to settle
        except Exception as exc:
            error = f"action failed: {exc}"
        self.record.append(ActedRecord(step=self._step, error=error,
                                           timings_ms={"act_and_settle": round((time.perf_counter() - t) * 1000, 2)}))
        if error:
            raise RuntimeError(error)
        return f"{text}: done"

    def launch(self, command: str) -> str:
        """Start a client's command: argv only (never a shell line), no host path bound (mcp/launch.py)."""
        from deskpilot.agent.desk.session import AppSpec
        from deskpilot.mcp.launch import client_argv

        argv = client_argv(command, self.options.shares)
        handle = self.desk.launch(AppSpec(argv=argv), timeout=15)
        return f"started {shlex.join(handle.argv)}"

    def find_text(self, text: str) -> list[dict[str, Any]]:
        from deskpilot.perception.ocr import find_text

        return [{"text": t.text, "box": list(t.box), "center": list(t.center), "score": t.score}
                for t in find_text(self.desk, text)]

    def click_text(self, text: str, *, index: int = 0, timeout: float = 0.0) -> dict[str, Any]:
        """Find `text` by OCR, then click it as a recorded step (like the click tool)."""
        from deskpilot.actions.models import Click
        from deskpilot.perception.ocr import wait_for_text

        found = wait_for_text(self.desk, text, timeout=timeout)
        if index >= len(found):
            raise UsageError(f"text {text!r} is on screen {len(found)} time(s); there is no match number {index + 1}")
        x, y = found[index].center
        self.act(Click(x=x, y=y), f"click_text(text={text!r}, index={index})")
        return {"text": found[index].text, "box": list(found[index].box), "clicked": [x, y]}

    def _model(self):
        if self._backend is None:
            self._backend = self.options.run_config.make_backend()
        return self._backend

    def _dialect(self):
        from deskpilot.agent.dialects import GLM45VDialect

        cfg = self.options.run_config
        return GLM45VDialect(extra_instructions=cfg.instructions, secrets=cfg.secrets)

    def locate(self, description: str) -> list[int]:
        from deskpilot.agent.loop.queries import run_locate

        self._queries += 1
        return list(run_locate(self._model(), self._dialect(), self.desk.observe(), description, self.trajectory,
                               f"query_{self._queries:03d}.png"))

    def ask(self, question: str) -> str:
        from deskpilot.agent.loop.queries import run_ask

        self._queries += 1
        return run_ask(self._model(), self._dialect(), self.desk.observe(), question, self.trajectory,
                       f"query_{self._queries:03d}.png")

    def run_task(self, task: str, max_steps: int | None = None) -> dict[str, Any]:
        """The agent loop on this session's screen, in its own run folder inside the session's."""
        from deskpilot.agent.loop.agent import Agent

        cfg = self.options.run_config
        policy = cfg.policy if max_steps is None else cfg.policy.model_copy(update={"max_steps": max_steps})
        self._tasks += 1
        task_dir = self.run_dir / f"task_{self._tasks:03d}"
        backend = cfg.backend
        with Agent(self._model(), self._desk, self._dialect(), run_dir=task_dir, policy=policy,
                   settings=cfg.loop, on_event=self._publish,
                   run_info={"model": backend.model, "base_url": backend.base_url,
                             "script": str(backend.script) if backend.script else None}) as agent:
            result = agent.run(task)  # writes the task's report.html itself
        return {"status": result.status.value, "answer": result.answer, "reason": result.reason,
                "steps": result.steps, "run_dir": str(task_dir), "report": str(task_dir / "report.html")}

    def _publish(self, event: Any) -> None:
        if self.options.live is not None:
            self.options.live.publish(event)

    # -- the end ---------------------------------------------------------------------
    async def aclose(self, reason: str = "the MCP session ended") -> None:
        """End the record (saying why), write the report, stop the sandbox (on the session thread)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.wrap_future(self._pool.submit(self._close, reason))
        self._pool.shutdown(wait=False)

    def _close(self, reason: str) -> None:
        if self.trajectory is None:  # no tool was ever called: nothing was started or recorded
            return
        from deskpilot.agent.records.report import build_report

        try:
            final = None
            if self._desk is not None:
                try:
                    final = self.record.save_screenshot(self._desk.screenshot(), "final.png")
                except Exception:  # a dead display must not cost the end record
                    pass
            started = self._desk is not None
            self.record.append(EndRecord(time=now_iso(), status=Status.STOPPED if started else Status.ERROR,
                                         steps=self._step, screenshot=final,
                                         reason=reason if started else f"{reason}; its sandbox never started"))
            self.record.close()
            build_report(self.run_dir)
        finally:
            if self.options.live is not None:
                self.options.live.detach()
            if self._backend is not None:
                try:
                    self._backend.close()
                except Exception:  # closing goes on whatever the backend says
                    pass
            if self._desk is not None:
                self._desk.close()
                self._desk = None
