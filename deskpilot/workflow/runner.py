"""Running a workflow: steps in order on one desktop, one run folder, one report.

A step that fails stops the run (the remaining steps are reported as
skipped); a check step runs all its checks first. The result is ``ok`` only
when every step and check passed. Agent steps each get a sub-folder with the
agent's own trajectory and report; the workflow's ``workflow.jsonl`` and
``report.html`` tie them together. A ``foreach`` with ``sandbox: per_row``
starts a fresh desktop for each row (the desktop section may use the row's
columns); ``shared`` runs the rows one after another on the current one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskpilot.agent.checks.evidence import FailureEvidence
from deskpilot.agent.checks.files import Unreadable, file_clock, locate, read_file
from deskpilot.agent.checks.models import resolve
from deskpilot.workflow import bridge
from deskpilot.workflow.record import Log, StepResult, WorkflowResult
from deskpilot.workflow.spec import (
    AgentStep, CheckStep, ClickStep, ClickTextStep, Element, FillStep, ForeachStep, KeyStep, LaunchStep, ScrollStep, SleepStep,
    TypeStep,
    WaitForStep, WaitForTextStep, WaitForWindowStep, Workflow,
)
from deskpilot.workflow.variables import Redactor, references, substitute, substitute_all
from deskpilot.errors import CheckFailed, ConfigError, DeskpilotError, WindowNotFound

if TYPE_CHECKING:
    from deskpilot.agent.desk.session import Session

_MARK = "\0"
_DESKTOP_STEPS = (LaunchStep, AgentStep, ClickTextStep, TypeStep, KeyStep, WaitForTextStep, WaitForWindowStep,
                  ClickStep, FillStep, WaitForStep, ScrollStep)


class _Stop(Exception):
    """A step failed: the rest of the workflow is skipped."""


def _needs_agent(steps) -> bool:
    return any(isinstance(s, AgentStep) or (isinstance(s, ForeachStep) and _needs_agent(s.steps)) for s in steps)


def _asks_model(check: Any) -> bool:
    return isinstance(check, dict) and "file" not in check and "expect" in check


def expect_steps(steps, prefix: str = "") -> list[str]:
    """Numbers of the check steps with an ``expect`` check: it asks the model, so the run needs one."""
    found: list[str] = []
    for i, step in enumerate(steps, 1):
        if isinstance(step, CheckStep) and any(_asks_model(c) for c in step.checks):
            found.append(f"{prefix}{i}")
        elif isinstance(step, ForeachStep):
            found += expect_steps(step.steps, f"{prefix}{i}.")
    return found


def needs_model(steps) -> bool:
    """Agent steps, or check steps with ``expect``: the workflow needs a backend (--base-url or --script)."""
    return _needs_agent(steps) or bool(expect_steps(steps))


def _label(step, values: Mapping[str, str]) -> str:
    if step.name:
        return step.name
    value = getattr(step, step.kind)
    if isinstance(step, CheckStep):
        return f"check ({len(step.checks)})"
    if isinstance(step, ForeachStep):
        return f"foreach row of {value}"
    try:
        text = substitute(str(value), values)
    except ConfigError:
        text = str(value)
    text = text.replace("\n", "\\n")
    return f"{step.kind}: {text if len(text) <= 70 else text[:67] + '...'}"


class WorkflowRun:
    """The state of one run: variables, the current desktop, the log and the results."""

    def __init__(self, flow: Workflow, run_dir: Path, *, backend=None, base_dir: Path, values: dict[str, str],
                 secrets: dict[str, str], settings=None, instructions: str = "",
                 say: Callable[[str], None] | None = None, make_dialect=None, policy=None, watch=None,
                 vnc=None) -> None:
        from deskpilot.agent.loop.policy import Policy

        self.vnc = vnc  # a VncOption: every desktop of the workflow gets a VNC server
        self.watch = watch  # a live view: attach(sandbox), detach(), publish(event)
        self.make_dialect = make_dialect or _default_dialect
        self.policy = policy or Policy()
        self.flow = flow
        self.run_dir = run_dir
        self.backend = backend
        self.base_dir = base_dir
        self.values = values
        self.user_values = dict(values)  # vars, --var, secrets, {cwd}, {run_dir}: what the user gave
        self.secrets = secrets
        self.settings = settings
        self.instructions = instructions
        self.redact = Redactor(secrets)
        self.say = say or (lambda line: None)
        self.log = Log(run_dir, self.redact)
        self.results: list[StepResult] = []
        self.desk: Session | None = None
        self.not_run = 0  # top-level steps not run because an earlier one failed
        self.started_ns = file_clock(run_dir)  # check files modified before this are not this run's outputs
        self.noted: set[str] = set()  # check files whose existence at the start was noted
        self.existed: set[str] = set()  # ... and those that existed then (default of modified_during_run)

    def from_data(self, template: str, values: Mapping[str, str]) -> bool:
        """Does ``template`` use a value the user did not give (a CSV row's column, an agent's answer)?

        Such a value is data an app or the model may have written: a path in it
        is never bound into a sandbox (agent/desk/apps.py).
        """
        return bool(self._data_names(template, values))

    def _data_names(self, template: str, values: Mapping[str, str]) -> set[str]:
        return {name for name in references(template)
                if name not in self.user_values or values.get(name) != self.user_values[name]}

    def command(self, template: str, values: Mapping[str, str]) -> tuple[list[str], frozenset[int]]:
        """An app command template -> (argv, indexes of the arguments holding data).

        The data values are wrapped in a NUL mark (which no shell word holds and
        which splits nothing) for a second split, so each argument knows if a
        row value or an answer went into it.
        """
        names = self._data_names(template, values)
        marked = {**values, **{n: f"{_MARK}{values[n]}{_MARK}" for n in names if values.get(n)}}
        try:
            words = shlex.split(substitute(template, marked))
        except ValueError as exc:
            raise ConfigError(f"cannot read app command {substitute(template, values)!r}: {exc}") from None
        return [w.replace(_MARK, "") for w in words], frozenset(i for i, w in enumerate(words) if _MARK in w)

    def share_roots(self, values: Mapping[str, str]) -> list[str]:
        """The workflow's shared folders (links in them are never followed by foreach or checks)."""
        roots = []
        for template in self.flow.desktop.shares:
            try:
                roots.append(os.path.abspath(self.base_dir / Path(substitute(str(template), values)).expanduser()))
            except ConfigError:
                continue
        return roots + ([str(p) for p in self.desk.shares.values()] if self.desk is not None else [])

    # -- desktops ---------------------------------------------------------------------
    def open_desktop(self, values: Mapping[str, str]):
        from deskpilot.agent.config.spec import parse_size, refuse_unisolated
        from deskpilot.agent.desk.session import Session, SessionSpec, app_from_command

        written = self.flow.desktop
        d = substitute_all(written.model_dump(mode="json"), values)
        for template in written.shares:
            if self.from_data(str(template), values):
                raise ConfigError(f"shared folder {template!r} uses a CSV column or an answer: a shared folder "
                                  f"must be named by you (in the workflow, vars or --var), never by data")
        shares = [os.path.abspath(self.base_dir / Path(s).expanduser()) for s in d["shares"]]
        held = "held" if getattr(self.backend, "api_key_set", False) else None
        refuse_unisolated(d["isolation"], d["unsafe_no_isolation"], api_key=held, secrets=self.secrets)
        apps = []
        for written_app in written.apps:
            argv, data = self.command(written_app, values)
            apps.append(app_from_command(shlex.join(argv), cwd=self.base_dir, shares=shares, from_data=data))
        spec = SessionSpec(size=parse_size(d["size"]), isolation=d["isolation"], network=d["network"],
                           maximize=d["maximize"], shares=shares, apps=apps, vnc=self.vnc,
                           accessibility=d["accessibility"], office_gtk3=d["office_gtk3"])
        self.say(f"starting a {spec.size[0]}x{spec.size[1]} desktop" +
                 (f" with {', '.join(self.redact(a) for a in d['apps'])}" if d["apps"] else ""))
        return Session(spec=spec, ready_timeout=d["ready_timeout"])

    def close_desktop(self) -> None:
        if self.desk is not None:
            desk, self.desk = self.desk, None
            if self.watch is not None:
                self.watch.detach()
            desk.close()

    # -- steps ------------------------------------------------------------------------------
    def note_outputs(self, steps, values: Mapping[str, str]) -> None:
        """Before a list of steps runs: which files its check steps name exist already (first sighting wins)."""
        for step in steps:
            if not isinstance(step, CheckStep):
                continue
            for raw in step.checks:
                try:
                    obj = substitute_all(raw, values)
                except ConfigError:  # a variable an agent step sets later: noted when the check runs
                    continue
                if isinstance(obj, dict) and "file" in obj:
                    path = str(Path(os.path.normpath(resolve(str(obj["file"]), self.base_dir))))
                    if path not in self.noted:
                        self.noted.add(path)
                        if os.path.lexists(path):
                            self.existed.add(path)

    def run_steps(self, steps, prefix: str, values: dict[str, str]) -> None:
        self.note_outputs(steps, values)
        for i, step in enumerate(steps, 1):
            number = f"{prefix}{i}"
            if not prefix:
                self.not_run = len(steps) - i + 1  # this step and the ones after it, until it passes
            if isinstance(step, _DESKTOP_STEPS) and self.desk is None:
                self.desk = desk = self.open_desktop(values)
                if self.watch is not None:
                    self.watch.attach(desk.sandbox)
            started = time.monotonic()
            result = StepResult(number=number, kind=step.kind, label=self.redact(_label(step, values)),
                                status="passed")
            try:
                self.perform(step, number, values, result)
            except _Stop:
                if not prefix:
                    self.not_run -= 1
                raise
            except CheckFailed as err:
                result.status, result.message = "failed", str(err)
                self.keep_evidence(number, result, err)
            except DeskpilotError as err:
                result.status, result.message = "error", str(err)
                self.keep_evidence(number, result, err)
            result.seconds = round(time.monotonic() - started, 2)
            if not isinstance(step, ForeachStep) or result.status != "passed":  # rows are recorded one by one
                self.finish(result)
            if not prefix:
                self.not_run -= 1
            if result.status != "passed":
                raise _Stop

    def finish(self, result: StepResult) -> None:
        result.message = self.redact(result.message)
        result.answer = self.redact(result.answer) if result.answer else result.answer
        self.results.append(result)
        self.log.write("step", **result.model_dump())
        mark = {"passed": "ok", "failed": "FAILED", "error": "ERROR", "skipped": "skipped"}[result.status]
        self.say(f"{result.number:>6} {mark:7} {result.label}" + (f"  ({result.message})" if result.message
                                                                    and result.status != "passed" else ""))
        if self.watch is not None:
            self.watch.publish({"event": "note", "text": f"workflow step {result.number} {mark}: {result.label}"})

    def keep_evidence(self, number: str, result: StepResult, err: DeskpilotError) -> None:
        """Save the screen (and text read) of a failed step, name the files in its message and record.

        A check step has saved its own (the frame its checks saw); other steps
        keep the frame their failure carries, or the screen as it is now.
        """
        evidence = getattr(err, "evidence", None)
        if not isinstance(evidence, FailureEvidence):
            if self.desk is None and getattr(err, "screen", None) is None:
                return  # no desktop (a file check, a CSV file): nothing on a screen to show
            evidence = bridge.save_failure(self.run_dir, f"step_{number.replace('.', '_')}_failed",
                                           screen=self.desk.screenshot if self.desk is not None else None,
                                           error=err, redact=self.redact)
        files = evidence.files()
        result.evidence = {k: os.path.relpath(v, self.run_dir) for k, v in files.items()}
        result.screenshot = result.evidence.get("screenshot")
        if files:
            result.message += "; evidence: " + ", ".join(files.values())
        elif evidence.problem:
            result.message += f"; no screenshot ({evidence.problem})"

    def snapshot(self, number: str) -> str | None:
        if self.desk is None:
            return None
        name = f"step_{number.replace('.', '_')}.png"
        self.desk.screenshot(self.run_dir / name)
        return name

    def perform(self, step, number: str, values: dict[str, str], result: StepResult) -> None:
        sub = lambda text: substitute(text, values)  # noqa: E731
        desk: Any = self.desk  # open for every desktop step (run_steps opens it); None for sleep/check/foreach
        if isinstance(step, LaunchStep):
            argv, data = self.command(step.launch, values)
            desk.launch(argv, wait=step.wait, timeout=step.timeout, from_data=data, cwd=self.base_dir)
        elif isinstance(step, TypeStep):
            self.guard_focus(step, values)
            desk.type(sub(step.type))
        elif isinstance(step, KeyStep):
            self.guard_focus(step, values)
            desk.key(sub(step.key))
        elif isinstance(step, SleepStep):
            time.sleep(step.sleep)
        elif isinstance(step, WaitForWindowStep):
            title = sub(step.wait_for_window)
            try:
                desk.sandbox.wait_for_window(title, timeout=step.timeout, ignore_case=step.ignore_case)
            except WindowNotFound as err:
                seen = ", ".join(repr(t) for t in err.titles) if err.titles else "none"
                hint = "" if step.ignore_case else " (ignore_case: true matches any case)"
                raise CheckFailed(f"no window titled {title!r} within {step.timeout:g} s; windows: {seen}"
                                  + (hint if any(title.casefold() in t.casefold() for t in err.titles) else "")
                                  ) from None
            _wait_quiet(desk, step.quiet, deadline=time.monotonic() + step.timeout)
        elif isinstance(step, WaitForTextStep):
            result.message = bridge.wait_for_text(desk, sub(step.wait_for_text), step.timeout, step.region)
        elif isinstance(step, ClickTextStep):
            result.message = bridge.click_text(desk, sub(step.click_text), step.timeout, step.index, step.region)
            desk.settle()
        elif isinstance(step, ClickStep):
            if isinstance(step.click, Element):
                result.message = bridge.click_element(desk, step.click, values, step.timeout)
            else:
                width, height = desk.size
                x, y = (min(dim - 1, round(v * dim / 1000)) for v, dim in zip(step.click, (width, height)))
                if step.double:
                    desk.double_click(x, y)
                else:
                    desk.click(x, y, button=step.button)
                result.message = f"clicked ({x}, {y})"
        elif isinstance(step, ScrollStep):
            width, height = desk.size
            x, y = (min(dim - 1, round(v * dim / 1000)) for v, dim in zip(step.scroll, (width, height)))
            desk.scroll(x, y, direction=step.direction, amount=step.amount)
            result.message = f"scrolled {step.direction} {step.amount} at ({x}, {y})"
        elif isinstance(step, FillStep):
            result.message = bridge.fill_element(desk, step.fill, values, step.timeout)
        elif isinstance(step, WaitForStep):
            result.message = bridge.wait_for_element(desk, step.wait_for, values, step.state, step.timeout)
        elif isinstance(step, AgentStep):
            self.agent(step, number, values, result)
        elif isinstance(step, CheckStep):
            self.check(step, number, values, result)
        elif isinstance(step, ForeachStep):
            self.foreach(step, number, values)
            return
        if isinstance(step, _DESKTOP_STEPS):
            result.screenshot = self.snapshot(number)

    def guard_focus(self, step, values: Mapping[str, str]) -> None:
        """A step's ``window:``: CheckFailed (nothing typed) unless the focused window's title contains it."""
        if step.window is None:
            return
        from deskpilot.agent.checks import CheckContext

        title = substitute(step.window, values)
        titles, active = CheckContext(sandbox=self.desk).window_titles()
        if active is None or title not in active:
            raise CheckFailed(f"not sent: the focused window is {active!r}, not one titled {title!r} "
                              f"(windows: {titles})")

    def agent(self, step: AgentStep, number: str, values: dict[str, str], result: StepResult) -> None:
        from deskpilot.agent.loop.answers import AnswerSchema
        from deskpilot.agent.loop.agent import Agent

        task = substitute(step.agent, values)
        schema = AnswerSchema(step.answer_schema, source="answer_schema") if step.answer_schema else None
        policy = self.policy.model_copy(update={"max_steps": step.max_steps})
        for attempt in range(step.retries + 1):
            folder = f"agent_{number.replace('.', '_')}" + (f"_retry{attempt}" if attempt else "")
            dialect = self.make_dialect(step.instructions or self.instructions, self.secrets)
            with Agent(self.backend, self.desk, dialect, run_dir=self.run_dir / folder, policy=policy,
                       settings=self.settings, output_schema=schema,
                       on_event=self.watch.publish if self.watch is not None else None,
                       run_info={"workflow": self.flow.name, "workflow_step": number}) as agent:
                run = agent.run(task)
            result.agent_run = folder
            result.message = f"{run.status.value} after {run.steps} step(s)" + (f": {run.reason}" if run.reason else "")
            if run.ok:
                if step.answer:
                    if run.answer is None:
                        raise CheckFailed(f"the agent finished without an answer for {{{step.answer}}}")
                    values[step.answer] = run.answer
                    values.update(_answer_fields(step.answer, run.answer))
                    result.answer = run.answer
                return
            if attempt < step.retries:
                self.say(f"{number:>6} retry   agent ended {run.status.value}; trying again")
        raise CheckFailed(f"agent ended {run.status.value}" + (f": {run.reason}" if run.reason else ""))

    def check(self, step: CheckStep, number: str, values: dict[str, str], result: StepResult) -> None:
        with contextlib.ExitStack() as stack:
            ask = self._asker(step, number, stack)
            self._run_checks(step, number, values, result, ask)

    def _asker(self, step: CheckStep, number: str, stack: contextlib.ExitStack):
        """``expect`` checks ask the workflow's model about the screen; the exchange goes to RUN/check_N/."""
        if self.backend is None or self.desk is None or not any(_asks_model(c) for c in step.checks):
            return None
        from deskpilot.agent.loop.agent import Agent

        agent = stack.enter_context(Agent(self.backend, self.desk, self.make_dialect(self.instructions, self.secrets),
                                          run_dir=self.run_dir / f"check_{number.replace('.', '_')}", report=False,
                                          run_info={"workflow": self.flow.name, "workflow_step": number}))
        return agent.ask

    def _run_checks(self, step: CheckStep, number: str, values: dict[str, str], result: StepResult, ask) -> None:
        failed, results = [], []
        stem = number.replace('.', '_')
        ctx = bridge.check_context(base_dir=self.base_dir, desk=self.desk, out_dir=self.run_dir, ask=ask,
                                   prefix=f"check_{stem}", shares=self.share_roots(values), since_ns=self.started_ns,
                                   existed=self.existed)
        for n, raw in enumerate(step.checks, 1):
            obj = substitute_all(raw, values)
            ctx.index = n
            outcome, checked = bridge.run_check(obj, ctx)
            results.append(checked)
            result.checks.append({"label": self.redact(outcome.label), "passed": outcome.passed,
                                  "message": self.redact(outcome.message)})
            if not outcome.passed:
                failed.append(f"{outcome.label}: {outcome.message}")
        result.message = "; ".join(c["message"] for c in result.checks)
        if failed:
            evidence = bridge.save_failure(self.run_dir, f"step_{stem}_failed", ctx=ctx, results=results,
                                           redact=self.redact)
            raise CheckFailed(f"{len(failed)} of {len(step.checks)} check(s) failed: " + "; ".join(failed),
                              evidence=evidence)

    def foreach(self, step: ForeachStep, number: str, values: dict[str, str]) -> None:
        path, anchor = locate(substitute(step.foreach, values), self.base_dir, self.share_roots(values))
        try:  # an earlier step's app may have written it: read like a check reads (no links, no FIFOs)
            text = read_file(path, anchor).decode("utf-8-sig")
        except Unreadable as err:
            raise ConfigError(f"foreach: {err}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"foreach: {path} is not UTF-8 text") from None
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        self.say(f"{number:>6} foreach {len(rows)} row(s) of {path.name} ({step.sandbox} desktop)")
        outer = self.desk
        for r, row in enumerate(rows, 1):
            row_values = {**values, **{k: (v or "") for k, v in row.items() if k}, "row_number": str(r)}
            if step.sandbox == "per_row":
                self.desk = None  # a fresh desktop for this row, opened by its first desktop step
            try:
                self.run_steps(step.steps, f"{number}.{r}.", row_values)
            finally:
                if step.sandbox == "per_row":
                    self.close_desktop()
                    self.desk = outer
                    if outer is not None and self.watch is not None:  # back to the desktop the rows interrupted
                        self.watch.attach(outer.sandbox)
            for name in (s.answer for s in step.steps if isinstance(s, AgentStep) and s.answer):
                values[f"{name}_{r}"] = row_values.get(name, "")


def _answer_fields(name: str, answer: str) -> dict[str, str]:
    """A JSON object answer also gives one variable per top-level field: {total_sum} for {"sum": 3}."""
    import json

    try:
        data = json.loads(answer)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {f"{name}_{k}": (json.dumps(v) if isinstance(v, (dict, list)) else str(v))
            for k, v in data.items() if isinstance(k, str) and k.isidentifier()}


def _default_dialect(instructions: str, secrets: Mapping[str, str]):
    from deskpilot.agent.dialects import GLM45VDialect

    return GLM45VDialect(extra_instructions=instructions, secrets=dict(secrets))


def _wait_quiet(desk, quiet: float, deadline: float, interval: float = 0.1) -> None:
    """Until the screen has not changed for ``quiet`` seconds; CheckFailed at the deadline.

    A blinking text cursor is not a change: frames count as the same when
    99.9 % of the (downscaled) pixels agree.
    """
    from deskpilot.agent.desk.screens import similarity

    last, since = desk.observe().image, time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise CheckFailed(f"the screen kept changing; it was never still for {quiet:g} s")
        time.sleep(interval)
        frame = desk.observe().image
        if similarity(last, frame) < 0.999:
            last, since = frame, time.monotonic()


def _resolve_values(flow: Workflow, cli_vars: Mapping[str, str], secrets: Mapping[str, str],
                    builtins: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {**builtins, **secrets}
    for name, raw in flow.vars.items():
        values[name] = substitute(str(raw).lower() if isinstance(raw, bool) else str(raw), values)
    values.update(cli_vars)
    return values


def run_workflow(flow: Workflow, run_dir: str | Path, *, backend=None, cli_vars: Mapping[str, str] | None = None,
                 base_dir: str | Path | None = None, settings=None, instructions: str = "",
                 env: Mapping[str, str] | None = None, say: Callable[[str], None] | None = None,
                 report: bool = True, make_dialect=None, policy=None, watch=None, vnc=None) -> WorkflowResult:
    """Run a validated workflow; returns how it went (``ok`` only if every step and check passed).

    ``make_dialect(instructions, secrets)`` builds each agent step's dialect
    (default GLM-4.5V); ``policy`` is the base policy of agent steps (their
    ``max_steps`` replaces its own); ``settings`` the loop settings; ``vnc`` a
    ``VncOption`` giving each desktop a VNC server (its line goes to stderr).
    """
    from deskpilot.agent.records.rundir import claim_run_dir

    env = os.environ if env is None else env
    missing = [name for name in flow.secrets if name not in env]
    if missing:
        raise ConfigError(f"secret {missing[0]} is not set: export {missing[0]}=... before running")
    if backend is None and _needs_agent(flow.steps):
        raise ConfigError("this workflow has agent steps: give a model (--base-url URL) or recorded replies (--script FILE)")
    if backend is None and (asking := expect_steps(flow.steps)):
        raise ConfigError(f"step {asking[0]} has an expect check, which asks a model: give one (--base-url URL) "
                          f"or recorded replies (--script FILE)")
    secrets = {name: env[name] for name in flow.secrets}
    base = Path(base_dir or Path.cwd()).resolve()
    run_dir = Path(run_dir)
    builtins = {"cwd": str(base), "run_dir": str(run_dir.resolve())}  # absolute paths for typing into apps
    values = _resolve_values(flow, cli_vars or {}, secrets, builtins)
    run_dir = claim_run_dir(run_dir)
    run = WorkflowRun(flow, run_dir, backend=backend, base_dir=base,
                      values=values, secrets=secrets, settings=settings, instructions=instructions, say=say,
                      make_dialect=make_dialect, policy=policy, watch=watch, vnc=vnc)
    started = time.monotonic()
    run.log.write("start", workflow=flow.model_dump(mode="json"), vars={k: v for k, v in values.items()
                                                                        if k not in secrets})
    error: str | None = None
    status = "ok"
    try:
        run.run_steps(flow.steps, "", values)
    except _Stop:
        status = "failed"
    except DeskpilotError as err:
        status, error = "error", str(err)
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted"
        raise
    finally:
        run.close_desktop()
        ok = status == "ok" and all(r.status == "passed" for r in run.results)
        result = WorkflowResult(name=flow.name, ok=ok, run_dir=str(run_dir), steps=run.results,
                                vars={k: run.redact(v) for k, v in values.items() if k not in secrets},
                                seconds=round(time.monotonic() - started, 2),
                                error=run.redact(error) if error else None)
        run.log.write("end", status=status if not (status == "ok" and not ok) else "failed", ok=ok,
                      error=result.error, seconds=result.seconds, steps_run=len(run.results),
                      steps_not_run=run.not_run, vars=result.vars)
        run.log.close()
        if report:
            from deskpilot.workflow.report import build_workflow_report

            result.report_path = str(build_workflow_report(run_dir))
    return result


def result_exit_code(result: WorkflowResult) -> int:
    return 0 if result.ok else (2 if result.error else 1)


__all__ = ["WorkflowResult", "WorkflowRun", "result_exit_code", "run_workflow"]
