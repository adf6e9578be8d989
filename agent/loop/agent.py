"""The perceive-think-act loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Literal

if TYPE_CHECKING:
    from deskpilot.actions.executor import Executor
    from deskpilot.agent.desk.session import Session
    from deskpilot.model_backend.base import Backend
    from deskpilot.perception.capture import Capturer
    from deskpilot.sandbox import Sandbox

from pydantic import BaseModel, Field, field_validator

from deskpilot.actions.models import Action, AskUser, Click, DoubleClick, Done, Fail, Wait
from deskpilot.actions.parse import ParseError
from deskpilot.agent.loop.answers import AnswerSchema
from deskpilot.agent.loop.background import in_daemon_thread
from deskpilot.agent.dialects.base import Dialect, HistoryEntry, ParsedStep
from deskpilot.agent.dialects.render import prompt_text
from deskpilot.agent.loop.policy import Confirm, Policy
from deskpilot.agent.loop.queries import run_ask, run_locate
from deskpilot.agent.loop.events import (
    ActionPerformed,
    EventHandler,
    ReplyRejected,
    RunEnded,
    RunStarted,
    StepDecided,
    StepStarted,
    redacting,
)
from deskpilot.agent.records.models import (
    FORMAT_VERSION,
    ActedRecord,
    Attempt,
    EndRecord,
    HumanAction,
    HumanRecord,
    PolicyDecision,
    RequestSummary,
    RunResult,
    Status,
    StepRecord,
)
from deskpilot.agent.desk.screens import settle
from deskpilot.agent.loop.state import RunState
from deskpilot.agent.loop.tokens import PrefixTracker, default_image_tokens
from deskpilot.agent.records.trajectory import Trajectory, now_iso
from deskpilot.errors import DeskpilotError, UsageError
from deskpilot.model_backend.types import ChatRequest, Reply, TextPart
from deskpilot.perception.encode import encode_png, freeze
from deskpilot.perception.observation import Observation


# widgets a click means as a whole (AT-SPI role names): loop.snap_to_element moves a click into their middle
SNAP_ROLES = frozenset({
    "push button", "toggle button", "check box", "radio button", "menu item", "check menu item",
    "radio menu item", "menu", "page tab", "link", "combo box", "spin button", "icon",
})


class LoopSettings(BaseModel):
    """How the loop talks to the model and waits for the screen."""

    # None = the dialect's default (the official agents': near-greedy, thinking on, 8192 tokens)
    thinking: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    parse_retries: int = Field(default=2, ge=0)
    dry_run: bool = False
    settle_cap_s: float = Field(default=2.0, ge=0)
    settle_interval_s: float = Field(default=0.05, gt=0)
    full_replies: bool = False  # keep raw replies longer than the stored cap in the run folder's replies/
    # off by default: move a model click on a small widget (button, check box, menu item, tab, link) to
    # the middle of that widget's box, read from the accessibility tree (see Agent._snap)
    snap_to_element: bool = False
    # off by default: GLM-4.5V's trained action space has no ask-user action, so a 4.5V run stuck on a login
    # or a captcha can only WAIT. With N, the (N+1)th WAIT in a row on an unchanged screen becomes a question
    # to the person (page or terminal; NEEDS_USER when nobody is there). The prompt is not changed.
    ask_after_waits: int | None = Field(default=None, ge=1)
    # "auto": X DAMAGE events (frame comparison where the display lacks DAMAGE); "frames": always
    # compare frames; "legacy": two equal frames settle_interval_s apart; "sleep": a fixed settle_sleep_s
    settle: Literal["auto", "frames", "legacy", "sleep"] = "auto"
    settle_first_change_s: float = Field(default=1.0, ge=0)
    settle_quiet_s: float = Field(default=0.015, gt=0)
    settle_sleep_s: float = Field(default=1.0, ge=0)
    settle_ignore: list[tuple[int, int, int, int]] = Field(default_factory=list)
    image_budget: str | None = None  # per screenshot: tokens (1200), pixels (1000000px) or a size (1280x720)
    history_images: int | None = Field(default=None, ge=0, le=50)  # earlier screenshots in the prompt [default: 4]

    @field_validator("image_budget")
    @classmethod
    def _budget(cls, v: str | None) -> str | None:
        if v is not None:
            from deskpilot.perception.resize import budget_pixels

            budget_pixels(v)  # a clear error for a bad budget, at load time
        return v

    def image_options(self) -> dict[str, Any]:
        """GLM45VOptions keywords for image_budget / history_images (none when unset)."""
        from deskpilot.perception.resize import budget_pixels

        options: dict[str, Any] = {}
        if self.image_budget is not None:
            options["max_pixels"] = budget_pixels(self.image_budget)
        if self.history_images is not None:
            options["history_screenshots"] = self.history_images
        return options


class _StepFailed(Exception):
    def __init__(self, status: Status, reason: str, kind: str | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.kind = kind


def summarize(request: ChatRequest, dialect: Dialect) -> RequestSummary:
    chars = sum(len(p.text) for m in request.messages for p in m.content if isinstance(p, TextPart))
    return RequestSummary(
        messages=len(request.messages),
        images=request.image_count(),
        image_tokens=dialect.image_tokens(request),
        text_chars=chars,
        thinking=request.thinking,
    )


def _usage(reply: Reply) -> dict[str, int]:
    return {"prompt_tokens": reply.usage.prompt_tokens, "completion_tokens": reply.usage.completion_tokens}


class Agent:
    """Runs one task on one desktop with one backend; writes one run folder.

    `desktop` is a `deskpilot.Sandbox` (agent.desk.session.Session), whose capture
    and input are used, or a bare `deskpilot.sandbox.Sandbox`. The run folder
    defaults to `runs/DATE-TASK/` (like the CLI) and must not hold a run
    already; it ends with report.html unless `report=False`. `capturer` and
    `executor` override the desktop's own (tests, replay). With `dry_run`
    nothing is ever sent to the display.
    """

    def __init__(
        self,
        backend: "Backend",
        desktop: "Session | Sandbox | None" = None,
        dialect: "Dialect | str | None" = None,
        *,
        run_dir: Path | str | None = None,
        policy: Policy | None = None,
        settings: LoopSettings | None = None,
        confirm: Confirm | None = None,
        on_event: EventHandler | None = None,
        capturer: "Capturer | None" = None,
        executor: "Executor | None" = None,
        run_info: dict[str, Any] | None = None,
        report: bool = True,
        output_schema=None,
        checks: list | None = None,
        check_base: Path | str | None = None,
        cache=None,
        check_shares: "list[str | Path] | None" = None,
        handover=None,
        ask_user=None,
    ) -> None:
        if dialect is None or isinstance(dialect, str):  # a name: "glm-4.5v", "glm-4.1v", "glm-5v"
            from deskpilot.agent.dialects import make_dialect

            dialect = make_dialect(dialect or "glm-4.5v", **(settings or LoopSettings()).image_options())
        from deskpilot.agent.desk.session import Session

        self.session = desktop if isinstance(desktop, Session) else None
        sandbox = self.session.sandbox if self.session is not None else desktop
        if self.session is not None:
            capturer = capturer or self.session.capturer
            executor = executor or self.session.executor
            run_info = {"session": self.session.spec.model_dump(mode="json"), **(run_info or {})}
        self.backend = backend
        self.sandbox: Any = sandbox  # a deskpilot.sandbox.Sandbox (or None for queries on images)
        self._a11y_reader: Any = None  # reads the element under each click (opened on first use)
        self.report = report
        self.dialect = dialect
        self.policy = policy or Policy()
        self.settings = settings or LoopSettings()
        self.confirm = confirm
        self.on_event = on_event or (lambda event: None)
        if on_event is not None and getattr(dialect, "secrets", None):
            self.on_event = redacting(on_event, getattr(dialect, "redact"))  # watchers show and record them
        self.run_info = run_info or {}
        self.output_schema = AnswerSchema.coerce(output_schema)
        options = getattr(dialect, "options", None)
        if self.output_schema is not None and options is not None and not getattr(options, "answer_note", "-"):
            options.answer_note = self.output_schema.note()  # the prompt tells the model the answer's shape
        self._capturer = capturer
        self._executor = executor
        self._settler = None
        self._prefix = PrefixTracker()
        self._owns = {"capturer": capturer is None, "executor": executor is None}
        self._run_dir = Path(run_dir) if run_dir is not None else None
        self._trajectory: Trajectory | None = None
        self._history: list[StepRecord] = []
        self.trajectory_humans: list[HumanRecord] = []  # a person's turns at the desk (take over, hand back)
        self._cached_humans: set[int] = set()  # steps after which the cache's person turn was tried
        self._waits = 0  # WAITs in a row on one screen (ask_after_waits)
        self._wait_screen: Any = None  # the screen of the last of them
        self._step = 0
        self._queries = 0
        self._output: Any = None
        self.checks = list(checks or [])  # verified after DONE: PASSED/FAILED (deskpilot.agent.checks)
        self.check_base = Path(check_base) if check_base is not None else Path.cwd()
        self.check_shares = list(check_shares or [])  # host folders the apps write (beyond the sandbox's own)
        self.files_started_ns: int | None = None  # set when the run starts (file checks' modified_during_run)
        self.files_before: set[str] | None = None
        self.check_results: list = []
        self.cache = cache  # a deskpilot.agent.records.cache.RunCache: cached actions while the screen matches
        self.handover = handover  # a deskpilot.agent.loop.handover.Handover: a person may take the desk between steps
        self.ask_user = ask_user  # (step, question) -> the person's answer, or None: nobody there (NEEDS_USER)

    # -- parts -----------------------------------------------------------------
    def _open_trajectory(self, name: str) -> Trajectory:
        if self._trajectory is None:
            from deskpilot.agent.records.rundir import claim_run_dir, default_run_dir

            run_dir = self._run_dir if self._run_dir is not None else default_run_dir(name)
            claim_run_dir(run_dir)
            self._run_dir = run_dir
            self._trajectory = Trajectory(run_dir, redact=getattr(self.dialect, "redact", None),
                                          full_replies=self.settings.full_replies)
        return self._trajectory

    @property
    def trajectory(self) -> Trajectory:
        return self._open_trajectory("queries")

    @property
    def run_dir(self) -> Path:
        return self.trajectory.run_dir

    def _capture(self) -> "Capturer":
        if self._capturer is None:
            from deskpilot.perception import Capturer

            self._capturer = Capturer(self.sandbox)
        return self._capturer

    def _grab(self) -> Observation:
        return self._capture().grab()

    def _prepare_frame(self, obs: Observation) -> None:
        """What the next step does first with its frame, done while the screen settles (agent.desk.settle)."""
        encode_png(freeze(obs.image))  # the saved screenshot
        prepare = getattr(self.dialect, "prepare_image", None)
        if prepare is not None:
            prepare(obs.image)  # the image as sent (fitted to the budget, encoded)

    def _exec(self):
        if self._executor is None:
            from deskpilot.actions.executor import Executor

            self._executor = Executor.for_sandbox(self.sandbox)
        return self._executor

    def _settle(self):
        """The run's Settler (DAMAGE watcher on the sandbox's display), made on first use."""
        if self._settler is None:
            from deskpilot.agent.desk.settle import SettleSettings, Settler

            s = self.settings
            settings = SettleSettings(first_change_s=s.settle_first_change_s, quiet_s=s.settle_quiet_s,
                                      cap_s=s.settle_cap_s, ignore=s.settle_ignore)
            capturer = self._capture()
            display, xauth = _display_of(self.sandbox, capturer)
            self._settler = Settler.open(capturer, settings, display=display, xauthority=xauth,
                                         use_damage=s.settle == "auto", prepare=self._prepare_frame)
        return self._settler

    def close(self) -> None:
        if self._settler is not None:
            self._settler.close()
            self._settler = None
        if self._owns["executor"] and self._executor is not None:
            self._executor.close()
            self._executor = None
        if self._owns["capturer"] and self._capturer is not None:
            self._capturer.close()
            self._capturer = None
        if self._trajectory is not None:
            self._trajectory.close()
        if self._a11y_reader is not None:
            self._a11y_reader.close()
            self._a11y_reader = None

    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- one-off queries ---------------------------------------------------------
    def locate(self, description: str) -> tuple[int, int, int, int]:
        """Ask the model where something is on the current screen (pixel box)."""
        self._queries += 1
        obs = self._grab()
        return run_locate(self.backend, self.dialect, obs, description, self.trajectory, f"query_{self._queries:03d}.png",
                          deadline_s=self.policy.step_timeout_s)

    def ask(self, question: str) -> str:
        """Ask the model a question about the current screen."""
        self._queries += 1
        obs = self._grab()
        return run_ask(self.backend, self.dialect, obs, question, self.trajectory, f"query_{self._queries:03d}.png",
                       deadline_s=self.policy.step_timeout_s)

    # -- the loop ----------------------------------------------------------------
    def run(self, task: str) -> RunResult:
        return asyncio.run(self.arun(task))

    async def arun(self, task: str) -> RunResult:
        if self._step:
            raise UsageError("an Agent runs one task (one run folder); make a new Agent for the next task")
        self._open_trajectory(task)
        self.trajectory.write_settings(self._settings_dump(task))
        if self.checks:  # what "written during this run" means for the file checks (modified_during_run)
            from deskpilot.agent.checks.files import existing, file_clock

            self.files_started_ns = file_clock(self.run_dir)
            self.files_before = existing(self.checks, self.check_base)
        self.on_event(RunStarted(task=task, run_dir=str(self.run_dir), max_steps=self.policy.max_steps))
        if not self.settings.dry_run and self.sandbox is not None:
            await asyncio.to_thread(self._exec)  # start the input worker before the clock runs
            if self.settings.settle in ("auto", "frames"):
                await asyncio.to_thread(self._settle)
        started = time.monotonic()
        totals: dict[str, float] = {"model_ms": 0.0, "prompt_tokens": 0, "completion_tokens": 0, "image_tokens": 0}
        options = getattr(self.dialect, "options", None)
        state = RunState(keep_images=getattr(options, "history_screenshots", 4))
        status, reason, answer = Status.MAX_STEPS, f"reached the step limit ({self.policy.max_steps})", None
        self._error_kind = None
        try:
            while self._step < self.policy.max_steps:
                if time.monotonic() - started > self.policy.run_timeout_s:
                    status, reason = Status.STOPPED, f"run time limit of {self.policy.run_timeout_s:g} s reached"
                    break
                if problem := self._sandbox_problem():  # X server, window manager or an app died
                    status, reason = Status.ERROR, problem
                    break
                if self.handover is not None and self.handover.pending():
                    await self._human_turn(state)
                    continue  # the limits are checked again: the person's time counts
                if self.cache is not None and not self.settings.dry_run and await self._cached_human_turn(state):
                    continue
                self._step += 1
                parsed = await self._one_step(task, state, totals)
                if isinstance(parsed.action, Done):
                    status, reason, answer = Status.DONE, "", parsed.action.answer
                    if self.output_schema is not None:
                        self._output = self.output_schema.check(answer)  # checked when parsed
                    break
                if isinstance(parsed.action, Fail):
                    status, reason = Status.FAIL, parsed.action.reason or "the model gave up"
                    break
        except _StepFailed as stop:
            status, reason, self._error_kind = stop.status, stop.reason, stop.kind
            wait = 1.0 if stop.kind == "action" else 0.0  # an action that failed may have met a dying display
            if status == Status.ERROR and (problem := self._sandbox_problem(wait=wait)):
                reason = f"{reason} ({problem})"
        except DeskpilotError as exc:  # a dead screen, a full disk, ...: the run still gets its end record
            status, reason = Status.ERROR, self._sandbox_problem(wait=1.0) or str(exc)
        except asyncio.CancelledError:  # also how Ctrl-C reaches a coroutine under asyncio.run
            status, reason = Status.STOPPED, "interrupted"
            self._end(status, reason, None, started, totals)
            raise
        except KeyboardInterrupt:
            status, reason = Status.STOPPED, "interrupted"
        except Exception as exc:  # a bug: record how the run ended, then let it show
            self._end(Status.ERROR, f"internal error {type(exc).__name__}: {exc}", None, started, totals)
            raise
        if status == Status.DONE and self.checks:
            from deskpilot.agent.checks.runner import verify_run

            status, reason = await asyncio.to_thread(verify_run, self)
        if self.cache is not None:
            succeeded = status in (Status.DONE, Status.PASSED) and not self.settings.dry_run  # dry: nothing was done
            totals["model_calls_saved"] = self.cache.finish(self.run_dir, saved=succeeded)
        return self._end(status, reason, answer, started, totals)

    async def _ask_person(self, step: int, parsed: ParsedStep, obs: Observation, state: RunState,
                          question: str = "") -> None:  # fmt: skip
        """The model asked the person: wait for the answer (page or terminal), or end the run NEEDS_USER."""
        question = question or getattr(parsed.action, "question", "") or "(no question given)"
        answer = await asyncio.to_thread(self.ask_user, step, question) if self.ask_user is not None else None
        if answer is None:
            raise _StepFailed(Status.NEEDS_USER, f"the model asks the user: {question}")
        line = f"(the user answered: {answer})"
        state.remember(parsed, obs, note=line)
        options = getattr(self.dialect, "options", None)
        if options is not None and hasattr(options, "user_response"):
            options.user_response = answer  # GLM-5V: its latest-user-response block
        self.trajectory.append(HumanRecord(after_step=step, time=now_iso(), question=question, note=answer,
                                           history_line=line))

    async def _human_turn(self, state: RunState) -> None:
        """A person has the desk: send nothing until they hand it back, then tell the model what happened.

        Their keys and clicks are read from the X server meanwhile and kept as
        actions (with the widget under each click, where the app has a tree),
        so replay and the action cache can do the turn again without them.
        """
        assert self.handover is not None
        self._cached_humans.add(self._step)  # a person is here: the cache's turn for this point is not done too
        started, n = time.monotonic(), len(self.trajectory_humans) + 1
        before = await asyncio.to_thread(self._grab)
        shot_before = self.trajectory.save_screenshot(before.image, f"human_{n:03d}_before.png")
        elements: dict[tuple[int, int, float], dict[str, Any]] = {}

        def under_click(event) -> None:  # on the recorder's thread, while the screen is as the person saw it
            if event.kind == "button_press" and (element := self._element_under((event.x, event.y))):
                elements[(event.x, event.y, event.time)] = element

        inputs = _start_input_log(self.sandbox, under_click)
        self.handover.begin()
        note = None
        try:
            while note is None:  # short waits, so Ctrl-C and cancellation still reach the run
                note = await asyncio.to_thread(self.handover.wait, 0.25)
        finally:
            events = _stop_input_log(inputs)
        after = await asyncio.to_thread(self._grab)
        line = human_history_line(note)
        secrets = set((getattr(self.dialect, "secrets", None) or {}).values())
        actions, skipped = _human_actions(events, elements, secrets) if inputs is not None else (None, [])
        self._human_done(state, HumanRecord(
            after_step=self._step, time=now_iso(), seconds=round(time.monotonic() - started, 3), note=note,
            screenshot_before=shot_before, history_line=line, inputs=_input_log(events), actions=actions,
            not_redone=skipped), after)
        if self.cache is not None and actions is not None:
            self.cache.keep_human(self._step, before, [a.model_dump(mode="json") for a in actions], note, line,
                                  getattr(self.dialect, "secrets", None))

    def _human_done(self, state: RunState, record: HumanRecord, after: Observation) -> None:
        """Record a person's turn (live or from the cache) and give the model its history line."""
        n = len(self.trajectory_humans) + 1
        state.history.append(HistoryEntry(thought="The user took over the desktop.", action_text=record.history_line,
                                          screenshot=after.image))
        record.screenshot_after = self.trajectory.save_screenshot(after.image, f"human_{n:03d}_after.png")
        self.trajectory.append(record)
        self.trajectory_humans.append(record)

    async def _cached_human_turn(self, state: RunState) -> bool:
        """Do a person's recorded turn again from the action cache, if one comes here and the screen agrees.

        The screen is compared as for a cached step (the screen the person
        started from); a difference ends the cache and the model decides (it
        may ask the person again: NEEDS_USER when nobody is there).
        """
        assert self.cache is not None
        if self._step in self._cached_humans or not self.cache.has_human(self._step):
            return False
        self._cached_humans.add(self._step)
        before = await asyncio.to_thread(self._grab)
        entry = self.cache.human_at(self._step, before, self._grab, getattr(self.dialect, "secrets", None))
        if entry is None:
            return False
        actions = [HumanAction.model_validate(a) for a in entry.actions]
        if (refused := self._refused(actions)) is not None:  # a cache file is not trusted: the run's rules hold
            self.cache.miss(self._step, f"the person's cached turn: {refused}")
            return False
        started, n = time.monotonic(), len(self.trajectory_humans) + 1
        shot_before = self.trajectory.save_screenshot(before.image, f"human_{n:03d}_before.png")
        for item in actions:
            await self._perform_quietly(item.action)
        after = await asyncio.to_thread(self._grab)
        self._human_done(state, HumanRecord(
            after_step=self._step, time=now_iso(), seconds=round(time.monotonic() - started, 3), note=entry.note,
            screenshot_before=shot_before, history_line=entry.history_line, actions=actions, cached=True), after)
        self.cache.keep_human(self._step, before, [a.model_dump(mode="json") for a in actions], entry.note,
                              entry.history_line, getattr(self.dialect, "secrets", None))
        return True

    def _refused(self, actions: list[HumanAction]) -> str | None:
        """Why a cached person's turn may not run unattended (the policy, or --confirm said no), else None."""
        for item in actions:
            allowed, reason = self.policy.check(item.action)
            if not allowed:
                return f"the policy refuses {item.action.type}: {reason}"
            if self.confirm is not None:
                verdict, why = _confirm_verdict(self.confirm(self._step, item.action, "a person's action, from the cache"))
                if verdict == "quit":
                    raise _StepFailed(Status.STOPPED, "the action was declined at confirmation")
                if verdict == "no":
                    return "declined by the user" + (f": {why}" if why else "")
        return None

    async def _perform_quietly(self, action: Action) -> None:
        """One action outside the model's steps (a cached person's turn), with the usual wait after it."""
        modern = self.settings.settle in ("auto", "frames")
        if modern:
            self._settle().before_act(action)
        try:
            await asyncio.to_thread(self._exec().perform, action)
        except Exception as exc:
            raise _StepFailed(Status.ERROR, f"the person's recorded action failed: {exc}", "action") from None
        if modern:
            await self._settle().aafter_act()
        else:
            await settle(self._grab, interval=self.settings.settle_interval_s, cap=self.settings.settle_cap_s)

    def _sandbox_problem(self, wait: float = 0.0) -> str | None:
        """What broke in the desktop, if anything; ``wait``: after an error, give a dying
        process a moment to be seen as dead (its X socket closes before it exits)."""
        sb = getattr(self.sandbox, "sandbox", self.sandbox)  # a desktop session wraps the low-level Sandbox
        check = getattr(sb, "problem", None)
        if not callable(check):
            return None
        deadline = time.monotonic() + wait
        while (problem := check()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return problem

    def _end(self, status, reason, answer, started, totals) -> RunResult:
        if totals.get("image_tokens_default"):
            totals["image_token_savings_pct"] = round(100 * (1 - totals["image_tokens"] / totals["image_tokens_default"]), 1)
        if totals.get("prompt_tokens_est"):
            totals["prefix_share"] = round(totals["prefix_tokens_est"] / totals["prompt_tokens_est"], 3)
        totals = {k: int(v) if float(v).is_integer() else round(v, 3 if k == "prefix_share" else 1) for k, v in totals.items()}
        totals["wall_s"] = round(time.monotonic() - started, 3)
        output = self._output if status in (Status.DONE, Status.PASSED) else None
        stored = output.model_dump(mode="json") if isinstance(output, BaseModel) else output
        self.trajectory.append(
            EndRecord(time=now_iso(), status=status, answer=answer, output=stored, reason=reason, steps=self._step,
                      totals=totals, screenshot=self._final_screenshot(), error_kind=getattr(self, "_error_kind", None))
        )
        report_path = None
        if self.report:
            try:
                from deskpilot.agent.records.report import build_report

                report_path = str(build_report(self.run_dir))
            except Exception as exc:  # the run is recorded; a report failure must not hide its result
                reason = f"{reason}; report.html could not be built: {exc}".lstrip("; ")
        self.on_event(RunEnded(status=status.value, reason=reason, answer=answer, steps=self._step,
                               run_dir=str(self.run_dir)))
        return RunResult(status=status, answer=answer, output=output, reason=reason, steps=self._step,
                         run_dir=str(self.run_dir), report_path=report_path, totals=totals,
                         history=list(self._history), checks=[r.model_dump(mode="json") for r in self.check_results],
                         error_kind=getattr(self, "_error_kind", None))

    def _final_screenshot(self) -> str | None:
        """The screen after the last action, for the report; a run still ends if it cannot be taken."""
        if (self.sandbox is None and self._capturer is None) or self._sandbox_problem():
            return None  # no display, or a dead one: another grab would only spoil the capturer's connection
        try:
            return self.trajectory.save_screenshot(self._grab().image, "final.png")
        except Exception:  # a dead display must not lose the end record
            return None

    def sampling(self) -> dict[str, Any]:
        """Sampling for every request: the loop's settings over the dialect's defaults."""
        base = getattr(self.dialect, "sampling", None)

        def pick(name: str, fallback: Any) -> Any:
            mine = getattr(self.settings, name)
            return mine if mine is not None else getattr(base, name, fallback)

        return {"temperature": pick("temperature", None), "top_p": pick("top_p", None),
                "max_tokens": pick("max_tokens", 8192), "thinking": pick("thinking", True)}

    def _request(self, task: str, obs: Observation, state: "RunState", failed: list[HistoryEntry]) -> ChatRequest:
        """One single-turn request; failed attempts of this step close its history."""
        sampling = self.sampling()
        request = self.dialect.build_request(task, obs, [*state.history, *failed], state.memory,
                                             thinking=sampling["thinking"])
        request.max_tokens = sampling["max_tokens"]
        request.temperature = sampling["temperature"]
        request.top_p = sampling["top_p"]
        return request

    async def _one_step(self, task: str, state: "RunState", totals: dict) -> ParsedStep:
        step, timings = self._step, {}
        step_started = time.monotonic()
        t = time.perf_counter()
        obs = self._settler.take_frame() if self._settler is not None else None  # grabbed while settling
        if obs is None:
            obs = self._grab()
            freeze(obs.image)  # saved, then sent (and later shrunk into history): encode it once
            if self._settler is not None:
                self._settler.frame_taken()
        timings["capture"] = _ms(t)
        t = time.perf_counter()
        shot = self.trajectory.save_screenshot(obs.image, f"step_{step:03d}.png")
        timings["screenshot_save"] = _ms(t)
        t = time.perf_counter()
        request = self._request(task, obs, state, [])
        timings["prompt"] = _ms(t)
        record = StepRecord(step=step, time=now_iso(), screenshot=shot, screen_size=obs.size, request=summarize(request, self.dialect))
        self._account(record.request, request, obs, len(state.history), totals)
        secrets = getattr(self.dialect, "secrets", None)
        cached = (self.cache.lookup(step, obs, self._grab, secrets, find_element=self._find_element)
                  if self.cache is not None else None)
        self.on_event(StepStarted(step=step, max_steps=self.policy.max_steps, screenshot=shot))
        try:
            parsed = self._parse_cached(cached, obs, step) if cached is not None else None
            if parsed is not None and cached is not None:
                reply, record.cached = cached, True
            else:
                parsed, reply = await self._ask_until_parsed(
                    request, obs, record, timings, totals, step_started,
                    rebuild=lambda failed: self._request(task, obs, state, failed))
        except _StepFailed as failure:
            record.error = failure.reason
            record.timings_ms = timings
            self._record(record)
            raise
        self._fill(record, parsed, reply)
        if self.settings.snap_to_element and not record.cached and not self.settings.dry_run:
            self._snap(record, parsed)
        if self.cache is not None:
            self.cache.keep(step, obs, reply, parsed.action, secrets)
        stuck = False
        if self.policy.check(parsed.action)[0]:  # compares frames (and may grab two more) only on a repeat
            stuck = await asyncio.to_thread(state.is_stuck, parsed.action, obs, self.policy.stuck_repeats, self._grab)
        self._decide(record, parsed, obs, state, step, stuck=stuck)
        if record.policy.allowed and record.points and not self.settings.dry_run:
            t = time.perf_counter()
            record.element = self._element_under(record.points[0])
            timings["element"] = _ms(t)
            if self.cache is not None:
                self.cache.note_element(step, record.element)
        record.timings_ms = timings
        t = time.perf_counter()
        self._record(record)
        timings["record"] = _ms(t)
        self.on_event(StepDecided(step=step, max_steps=self.policy.max_steps, record=record))
        if not record.policy.allowed:
            if self.policy.on_violation == "stop" and record.policy.by != "user":
                raise _StepFailed(Status.STOPPED, f"policy: {record.policy.reason}")
            state.remember(parsed, obs, note=f"(not performed: {record.policy.reason})")
            return parsed
        if isinstance(parsed.action, (Done, Fail)):
            return parsed
        if isinstance(parsed.action, AskUser):
            await self._ask_person(step, parsed, obs, state)
            return parsed
        if not self.settings.dry_run:
            await self._act(step, parsed.action)
        if (question := self._stuck_waiting(parsed, obs)) is not None:
            await self._ask_person(step, parsed, obs, state, question)
            return parsed
        state.remember(parsed, obs)
        return parsed

    def _stuck_waiting(self, parsed: ParsedStep, obs: Observation) -> str | None:
        """The question for the person once the model has waited past ``ask_after_waits`` on an unchanged screen."""
        limit = self.settings.ask_after_waits
        if limit is None or not isinstance(parsed.action, Wait):
            self._waits = 0
            return None
        from deskpilot.agent.desk.diff import compare_live

        same = False
        if self._wait_screen is not None:  # "unchanged" as the cache means it: nothing over 10 px persists a blink
            diff = compare_live(self._wait_screen, obs.image, self._grab)[0]
            same = not diff.size_mismatch and diff.largest <= 10
        self._waits = self._waits + 1 if same else 1
        self._wait_screen = obs.image
        if self._waits <= limit:
            return None
        self._waits = 0
        said = f" It thinks: {parsed.thought}" if parsed.thought else ""
        return f"The model has waited {limit + 1} times on a screen that does not change.{said} What should it do?"

    def _reader(self):
        if self._a11y_reader is None:
            address = getattr(self.sandbox, "a11y_address", None)
            if address is None:
                return None
            from deskpilot.perception.a11y import A11yReader

            self._a11y_reader = A11yReader(address)
        return self._a11y_reader

    def _find_element(self, element: dict[str, Any]) -> tuple[int, int] | None:
        """Middle of the one visible widget with this role and name now (a cached click's target), or None."""
        reader = self._reader()
        if reader is None:
            return None
        from deskpilot.perception.a11y import find_again

        return find_again(reader, element)

    def _snap(self, record: StepRecord, parsed: ParsedStep) -> None:
        """Move a model click into the middle of the small widget it landed in (``loop.snap_to_element``).

        Why: a grounded click now and then lands on a button's rim or past its
        label, where some toolkits ignore it or hit the neighbour. The tree
        knows the widget's box; the middle of it is the safe place. Only
        clicks inside a button-like widget's box move, never on text, fields,
        canvases or cells, where the exact point is what the model meant; the
        model is prompted as trained (screenshots only). The move is recorded
        (``StepRecord.snapped``).
        """
        action = parsed.action
        if not isinstance(action, (Click, DoubleClick)):
            return
        reader = self._reader()
        if reader is None:
            return
        try:
            element = reader.element_at(action.x, action.y, time_limit=0.3, box=True)
        except Exception:  # a reading that fails must never stop the run
            return
        if not element or element["role"] not in SNAP_ROLES or not element.get("box"):
            return
        x, y, w, h = element["box"]
        width, height = record.screen_size
        if not (x <= action.x < x + w and y <= action.y < y + h) or w * h * 16 > max(width * height, 1):
            return  # not inside it, or too big to be a button (a whole panel answering for its children)
        middle = (x + w // 2, y + h // 2)
        if middle != (action.x, action.y):
            parsed.action = action.model_copy(update={"x": middle[0], "y": middle[1]})
            record.action, record.points = parsed.action, parsed.action.points()
            record.snapped = {"from": [action.x, action.y], "to": list(middle),
                              "element": {k: element[k] for k in ("role", "name", "path")}}  # fmt: skip

    def _element_under(self, point: tuple[int, int]) -> dict[str, Any] | None:
        """Role, name and path of the widget the action will hit (None: no tree there, or no answer in 0.3 s).

        Read before the action, so it names what was clicked, not what the
        click opened; the report shows it next to the click mark.
        """
        reader = self._reader()
        if reader is None:
            return None
        try:
            return reader.element_at(*point, time_limit=0.3)
        except Exception:  # a reading that fails must never stop the run
            return None

    def _account(self, summary: RequestSummary, request: ChatRequest, obs: Observation, history: int, totals: dict) -> None:
        """Image tokens, estimated prompt tokens, the default-settings cost and the reusable prefix."""
        shared, total = self._prefix.measure(request)
        summary.prompt_tokens_est = total
        summary.prefix_tokens_est = shared
        summary.prefix_share = round(shared / total, 4) if total else 0.0
        summary.image_tokens_default = default_image_tokens(obs.width, obs.height, history)
        for key in ("image_tokens", "image_tokens_default", "prompt_tokens_est", "prefix_tokens_est"):
            totals[key] = totals.get(key, 0) + getattr(summary, key)

    async def _ask_until_parsed(self, request, obs, record, timings, totals, step_started, rebuild=None):
        attempts, schema_retries, failed = 0, 0, []
        while True:
            text, sampling = prompt_text(request.messages), _sampling_of(request)
            remaining = self.policy.step_timeout_s - (time.monotonic() - step_started)
            if remaining <= 0:
                raise _StepFailed(Status.STOPPED, f"step time limit of {self.policy.step_timeout_s:g} s reached")
            t = time.perf_counter()
            try:
                async with asyncio.timeout(remaining):  # not wait_for: on 3.11 it can swallow a Ctrl-C
                    reply = await self.backend.acomplete(request)
            except asyncio.TimeoutError:
                raise _StepFailed(Status.STOPPED, f"step time limit of {self.policy.step_timeout_s:g} s reached") from None
            except Exception as exc:  # backend errors end the run with their message
                from deskpilot.errors import BackendUnreachable

                kind = "unreachable" if isinstance(exc, BackendUnreachable) else "backend"
                raise _StepFailed(Status.ERROR, f"model call failed: {exc}", kind) from None
            timings["model"] = timings.get("model", 0.0) + _ms(t)
            totals["model_ms"] += reply.latency_ms or _ms(t)
            totals["prompt_tokens"] += reply.usage.prompt_tokens
            totals["completion_tokens"] += reply.usage.completion_tokens
            record.usage = {k: record.usage.get(k, 0) + v for k, v in _usage(reply).items()}
            t = time.perf_counter()
            try:
                parsed = await self._parse(reply, obs, step_started)
                if not self.settings.dry_run and not isinstance(parsed.action, (Done, Fail)):
                    self._validate(parsed.action)
                timings["parse"] = timings.get("parse", 0.0) + _ms(t)
                if isinstance(parsed.action, Done) and self.output_schema is not None:
                    try:
                        self.output_schema.check(parsed.action.answer)
                    except ValueError as bad:
                        schema_retries += 1
                        record.attempts.append(Attempt(raw_reply=reply.content, reasoning=reply.reasoning,
                                                       error=str(bad), prompt=text, sampling=sampling))
                        if schema_retries > 1 or rebuild is None:
                            record.raw_reply, record.reasoning = reply.content, reply.reasoning
                            raise _StepFailed(Status.ERROR, f"after {schema_retries} tries: {bad}") from None
                        self.on_event(ReplyRejected(step=self._step, error=str(bad)))
                        failed.append(self.dialect.failed_attempt(reply.content, str(bad)))
                        request = rebuild(failed)
                        continue
                record.prompt, record.sampling = text, sampling
                return parsed, reply
            except ParseError as err:
                message = getattr(err, "message", None) or str(err)
                timings["parse"] = timings.get("parse", 0.0) + _ms(t)
                record.attempts.append(Attempt(raw_reply=reply.content, reasoning=reply.reasoning, error=message,
                                               prompt=text, sampling=sampling))
                attempts += 1
                giving_up = attempts > self.settings.parse_retries or rebuild is None
                self.on_event(ReplyRejected(step=self._step, error=message, giving_up=giving_up))
                if giving_up:
                    record.raw_reply, record.reasoning = reply.content, reply.reasoning
                    raise _StepFailed(Status.ERROR, f"the model's reply did not parse after {attempts} tries: {message}",
                                      "parse") from None
                failed.append(self.dialect.failed_attempt(reply.content, message))
                request = rebuild(failed)

    def _parse_cached(self, cached: Reply, obs: Observation, step: int) -> ParsedStep | None:
        """A cached reply parsed, or None (a cache miss: the model is asked) if the file's text no longer parses."""
        try:
            return self.dialect.parse(cached.content, cached.reasoning, obs.width, obs.height)
        except ParseError as err:
            if self.cache is not None:
                self.cache.reject(step, f"the cached reply does not parse ({getattr(err, 'message', None) or err})")
            return None

    async def _parse(self, reply: Reply, obs: Observation, step_started: float) -> ParsedStep:
        """Parse in a worker thread, so the step time limit still holds while it runs."""
        remaining = max(self.policy.step_timeout_s - (time.monotonic() - step_started), 0.001)
        work = in_daemon_thread(self.dialect.parse, reply.content, reply.reasoning, obs.width, obs.height, name="deskpilot-parse")
        try:
            async with asyncio.timeout(remaining):  # not wait_for: on 3.11 it can swallow a Ctrl-C
                return await work
        except asyncio.TimeoutError:
            raise _StepFailed(Status.STOPPED, f"step time limit of {self.policy.step_timeout_s:g} s reached while parsing the reply") from None

    def _validate(self, action: Action) -> None:
        from deskpilot.actions.executor import ActionError

        try:
            self._exec().validate(action)
        except ActionError as err:
            raise ParseError(str(err)) from None

    def _fill(self, record: StepRecord, parsed: ParsedStep, reply: Reply) -> None:
        record.raw_reply = reply.content
        record.reasoning = parsed.reasoning if parsed.reasoning is not None else reply.reasoning
        record.thought = parsed.thought
        record.action = parsed.action
        record.action_text = parsed.action_text
        record.model_points = list(parsed.model_points)
        record.points = parsed.action.points()
        record.element_info = parsed.element_info
        record.memory = parsed.memory

    def _decide(self, record: StepRecord, parsed: ParsedStep, obs: Observation, state: "RunState", step: int,
                *, stuck: bool = False) -> None:
        t = time.perf_counter()
        allowed, reason = self.policy.check(parsed.action)
        if allowed and stuck:
            record.policy = PolicyDecision(allowed=False, reason=f"stuck: the same action {self.policy.stuck_repeats} times with no screen change")
            record.timings_ms["policy"] = _ms(t)
            self._record(record)
            raise _StepFailed(Status.STOPPED, record.policy.reason)
        if allowed and self.confirm is not None and not isinstance(parsed.action, (Done, Fail, AskUser)):
            verdict, why = _confirm_verdict(self.confirm(step, parsed.action, parsed.thought))
            if verdict == "no":  # skip this action; the model is told why and goes on
                reason = "declined by the user" + (f": {why}" if why else "")
                record.policy = PolicyDecision(allowed=False, reason=reason, by="user")
                return
            if verdict == "quit":
                record.policy = PolicyDecision(allowed=False, reason="declined at confirmation", by="user")
                self._record(record)
                raise _StepFailed(Status.STOPPED, "the action was declined at confirmation")
        record.policy = PolicyDecision(allowed=allowed, reason=reason)

    async def _act(self, step: int, action: Action) -> None:
        timings, error, waited = {}, None, None
        modern = self.settings.settle in ("auto", "frames")
        if modern:
            self._settle().before_act(action)
        t = time.perf_counter()
        try:
            if isinstance(action, Wait):  # no thread to wait for if the run is interrupted
                await asyncio.sleep(action.seconds)
            else:
                await asyncio.to_thread(self._exec().perform, action)
        except Exception as exc:  # an action that fails is recorded, and ends the run
            error = f"action failed: {exc}"
        timings["act"] = _ms(t)
        t = time.perf_counter()
        if error is None and modern:
            waited = await self._settle().aafter_act()
        elif error is None and self.settings.settle == "legacy":
            await settle(self._grab, interval=self.settings.settle_interval_s, cap=self.settings.settle_cap_s)
        elif error is None:
            await asyncio.sleep(self.settings.settle_sleep_s)
        timings["settle"] = _ms(t)
        self.trajectory.append(ActedRecord(step=step, timings_ms=timings, error=error,
                                           settle=waited.model_dump() if waited else None))
        if self._history and self._history[-1].step == step:
            self._history[-1].performed = error is None
            self._history[-1].timings_ms.update(timings)
            self._history[-1].error = error or self._history[-1].error
            self._history[-1].settle = waited.model_dump() if waited else None
        self.on_event(ActionPerformed(step=step, timings_ms=timings, error=error))
        if error:
            raise _StepFailed(Status.ERROR, error, "action")

    def _record(self, record: StepRecord) -> None:
        """Write the step's record (before its action runs) and keep it for the result."""
        self.trajectory.append(record)
        if not self._history or self._history[-1] is not record:
            self._history.append(record)

    def _settings_dump(self, task: str) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "task": task,
            "dialect": getattr(self.dialect, "name", type(self.dialect).__name__),
            "backend": type(self.backend).__name__,
            "policy": self.policy.model_dump(mode="json"),
            "loop": self.settings.model_dump(mode="json"),
            "sampling": self.sampling(),
            "output_schema": self.output_schema.schema if self.output_schema is not None else None,
            "screen_size": list(self.sandbox.size) if self.sandbox is not None else None,
            **self.run_info,
        }


def _start_input_log(sandbox, on_event=None):
    """Record the person's input on the desk (X RECORD), or None where the display cannot be recorded."""
    if sandbox is None:
        return None
    from deskpilot.perception.inputs import InputRecorder

    try:
        return InputRecorder(sandbox.display, sandbox.xauthority, on_event=on_event).start()
    except Exception:  # no RECORD extension, display gone: the turn is still recorded, without its inputs
        return None


def _stop_input_log(recorder) -> list:
    """Every event the recorder saw (none without a recorder)."""
    return [] if recorder is None else recorder.stop()


def _input_log(events) -> list[dict[str, Any]]:
    """The person's keys and clicks as the raw log; characters masked (the typed text is in the actions, redacted)."""
    logged = []
    for event in events:
        if event.kind not in ("key_press", "button_press"):
            continue
        item: dict[str, Any] = {"kind": event.kind, "x": event.x, "y": event.y, "state": event.state}
        if event.kind == "button_press":
            item["button"] = event.detail
        else:
            item["key"] = "<char>" if event.char and not event.state & 0x4C else event.keysym  # ctrl/alt/super keep names
        logged.append(item)
    return logged


def _human_actions(events, elements: dict, secrets: Collection[str] = ()) -> tuple[list[HumanAction], list[str]]:
    """The person's events as the actions that redo them, each click with the widget it hit (if read),
    and what no action will redo: a key the executor has no name for, or text typed into a password
    field that is not one of the run's secrets (kept out of every file; a ``--secret`` value is kept
    as ``***NAME***`` and typed again from the later run's secrets)."""
    from deskpilot.perception.gestures import action_of, gestures

    out, skipped, field = [], [], None
    for gesture in gestures(events, enter_as_key=True):
        event = gesture.event
        pointed = event is not None and gesture.kind in ("click", "double", "drag")
        element = elements.get((event.x, event.y, event.time)) if pointed and event is not None else None
        if pointed:
            field = element
        if gesture.kind == "type" and field and "password" in str(field.get("role", "")) and gesture.text not in secrets:
            skipped.append("text typed into a password field (not a --secret value, so not recorded)")
            continue
        try:
            action = action_of(gesture)
        except ValueError:
            skipped.append(f"{gesture.kind} {gesture.text}".strip())
            continue
        out.append(HumanAction(action=action, element=element))
    return out, skipped


def human_history_line(note: str) -> str:
    """What the model's history says about a person's turn (GLM-4.5V style: one action line)."""
    return f"The user took over and did: {note}" if note else "The user took over and handed back without a note."


def _confirm_verdict(answer) -> tuple[str, str]:
    """A confirm callback's answer -> ("yes" | "no" | "quit", why).

    True/False keep their old meaning (go ahead / stop the run); "no" (or
    ("no", why)) skips the action and tells the model why.
    """
    if answer is True:
        return "yes", ""
    if answer is False or answer is None:
        return "quit", ""
    if isinstance(answer, tuple):
        return str(answer[0]), str(answer[1] or "") if len(answer) > 1 else ""
    return str(answer), ""


def _sampling_of(request: ChatRequest) -> dict[str, Any]:
    return {"temperature": request.temperature, "top_p": request.top_p, "max_tokens": request.max_tokens,
            "thinking": request.thinking}
def _display_of(sandbox, capturer) -> tuple[str | None, Any]:
    if sandbox is not None and getattr(sandbox, "display", None):
        return sandbox.display, getattr(sandbox, "xauthority", None)
    if capturer is not None and getattr(capturer, "display", None):
        return capturer.display, getattr(capturer, "_xauthority", None)
    return None, None


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
