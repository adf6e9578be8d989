"""Perform a recorded run again, without a model, checking the screen as it goes."""

from __future__ import annotations

import os
from types import SimpleNamespace
from datetime import datetime
from pathlib import Path
from typing import Callable

from PIL import Image
from pydantic import BaseModel, ValidationError

from deskpilot.actions.models import TERMINAL_TYPES, action_from_json
from deskpilot.agent.desk.diff import compare_live, diff_image
from deskpilot.agent.desk.session import SessionSpec, open_sandbox, wait_until_ready
from deskpilot.agent.records.secrets import restore
from deskpilot.agent.records.trajectory import load_run


from deskpilot.errors import ReplayError


MAX_CHANGE = 10  # px in one changed region that persists over a caret's whole blink: a caret passes, a changed digit does not


class ReplayResult(BaseModel):
    ok: bool
    steps_replayed: int
    diverged_at: int | None = None
    largest_change: int | None = None  # px in the largest changed region at the divergence
    live_image: str | None = None  # the live screen at the divergence
    diff_image: str | None = None  # the diff against the recording
    recording_end: str = ""  # how the recorded run ended
    found_by_element: list[int] = []  # steps whose screen differed but whose clicked widget was found again
    person_turns: int = 0  # a person's recorded turns done again
    person_at: int | None = None  # the step before which a person acted in a way the recording cannot redo
    message: str = ""


def session_of(run_dir: Path) -> SessionSpec:
    run = load_run(run_dir)
    if "session" not in run.settings:
        raise ReplayError(f"{run_dir} has no session settings (was it recorded by `deskpilot run`?)")
    try:
        recorded = run.settings["session"]
        if isinstance(recorded, dict):  # runs recorded before windows were maximized keep their sizes
            recorded = {"maximize": False, **recorded}
        return SessionSpec.model_validate(recorded)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "session"
        raise ReplayError(f"{run_dir}: the recorded session is broken at {where}: {first['msg']}") from None


def _ending(run) -> str:
    if run.end is None:
        last = run.steps[-1].step if run.steps else 0
        return f"the recording has no end (it stopped after step {last})"
    why = f" ({run.end.reason})" if run.end.reason else ""
    return f"the recording ended at step {run.end.steps} with {run.end.status.value}{why}"


def _replayable(run) -> list:
    """Steps that were really performed, then the terminal step; stop at the first that was not."""
    out = []
    for rec in run.steps:
        if rec.action is None or not rec.policy.allowed:
            continue
        if rec.action.type in TERMINAL_TYPES:
            out.append(rec)
            break
        if not rec.performed:
            break  # it failed or was never acted on: nothing after it happened either
        out.append(rec)
    return out


def replay(
    run_dir: Path,
    *,
    check: bool = True,
    max_change: int = MAX_CHANGE,
    session: SessionSpec | None = None,
    out_dir: Path | None = None,
    on_step: Callable[[int, int, int | None], None] | None = None,
) -> ReplayResult:
    """Replay in a fresh sandbox; stop before the first step whose screen differs from the recording.

    The screens are compared with the screenshot check's diff: a step diverges
    when a connected change of more than ``max_change`` pixels persists over
    a caret's whole blink (compare_live), so a changed word or a new dialog stops the replay. A click
    whose widget was recorded (role and name, from the accessibility tree) is
    not a divergence when that widget is found again, alone, on the live
    desktop: it is clicked where it is now. The live
    screen and a diff image are then written to ``out_dir`` (default: a
    ``replay-TIME`` folder in the run folder).
    """
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    if (run.settings.get("loop") or {}).get("dry_run"):
        raise ReplayError(f"{run_dir} was recorded with --dry-run: none of its actions were performed, "
                          "so there is nothing to replay")
    steps = _replayable(run)
    if not steps:
        raise ReplayError(f"{run_dir} has no performed actions to replay ({_ending(run)})")
    secrets = list(run.settings.get("secrets") or [])
    missing = [name for name in secrets if name not in os.environ]
    if missing:
        raise ReplayError(f"the run used secret(s) {', '.join(missing)}: export them before replaying")
    for rec in steps:
        rec.action = action_from_json(restore(rec.action.model_dump(mode="json"), secrets, dict(os.environ)))
    humans = [h for h in run.humans if not h.question]  # answers to questions changed nothing on the screen
    for human in humans:
        for item in human.actions or []:
            item.action = action_from_json(restore(item.action.model_dump(mode="json"), secrets, dict(os.environ)))
    spec = session or session_of(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / f"replay-{datetime.now():%Y%m%d-%H%M%S}"
    from deskpilot.actions.executor import Executor
    from deskpilot.perception import Capturer

    sb, apps = open_sandbox(spec, create_shares=True)
    with sb:
        capturer = Capturer(sb)
        executor = Executor.for_sandbox(sb)
        try:
            wait_until_ready(sb, capturer, handles=apps, has_apps=bool(spec.apps))
            finder = _finder(sb)
            result = _walk(run_dir, steps, capturer, executor, check, max_change, out_dir, on_step, finder, humans)
        finally:
            executor.close()
            capturer.close()
    end = _ending(run)
    return result.model_copy(update={"recording_end": end, "message": f"{result.message}; {end}"})


def _diverged(rec, frame, recorded, capturer, max_change, out_dir, label: str = "",
              what: str = "") -> tuple[ReplayResult | None, int]:  # fmt: skip
    diff, mask = compare_live(recorded, frame.image, capturer.grab)
    if not diff.size_mismatch and diff.largest <= max_change:
        return None, diff.largest
    out_dir.mkdir(parents=True, exist_ok=True)
    label = label or f"step_{rec.step:03d}"
    live = out_dir / f"diverged_{label}_live.png"
    frame.image.save(live)
    picture = out_dir / f"diverged_{label}_diff.png"
    diff_image(frame.image, mask, diff).save(picture)
    return ReplayResult(
        ok=False, steps_replayed=0, diverged_at=rec.step, largest_change=diff.largest,
        live_image=str(live), diff_image=str(picture),
        message=(f"{what or f'step {rec.step}'}: the screen differs from the recording ({diff.summary()}); "
                 f"stopped before acting; live screen {live}, diff {picture}"),
    ), diff.largest


def _finder(sb) -> Callable[[dict], tuple[int, int] | None] | None:
    """Finds a recorded click's widget by role and name on the replay's desktop (None: no accessibility bus)."""
    address = getattr(sb, "a11y_address", None)
    if address is None:
        return None
    from deskpilot.perception.a11y import A11yError, A11yReader, find_again

    reader = A11yReader(address)

    def find(element: dict) -> tuple[int, int] | None:
        try:
            return find_again(reader, element)
        except A11yError:
            return None

    return find


def _moved(rec, finder) -> object | None:
    """The step's point action sent to its recorded widget's new middle, or None."""
    element = getattr(rec, "element", None)
    if finder is None or not element or rec.action.type not in _POINT_TYPES:
        return None
    point = finder(element)
    return rec.action.model_copy(update={"x": point[0], "y": point[1]}) if point else None


_POINT_TYPES = {"click", "double_click", "triple_click", "hover"}


def _walk(run_dir, steps, capturer, executor, check, max_change, out_dir, on_step, finder=None,
          humans=()) -> ReplayResult:  # fmt: skip
    from deskpilot.agent.desk.settle import Settler

    settler = Settler.open(capturer)  # the same event-driven wait as the live loop
    try:
        return _walk_steps(run_dir, steps, capturer, executor, check, max_change, out_dir, on_step, settler, finder,
                           list(humans))
    finally:
        settler.close()


def _person_turn(human, run_dir, capturer, executor, check, max_change, out_dir, settler) -> ReplayResult | None:
    """Do a person's recorded turn again (its start screen checked like a step's); a ReplayResult when it stops."""
    before = human.after_step + 1
    if human.actions is None:
        return ReplayResult(ok=False, steps_replayed=0, person_at=before,
                            message=f"a person acted here (step {before}); replay cannot redo it "
                                    "(the run recorded the turn without its actions)")
    frame = capturer.grab()
    settler.frame_taken()
    shot = human.screenshot_before
    if check and shot and (run_dir / shot).is_file():
        with Image.open(run_dir / shot) as img:
            recorded = img.convert("RGB")
        stop, _ = _diverged(SimpleNamespace(step=before), frame, recorded, capturer, max_change, out_dir,
                            label=f"person_before_step_{before:03d}", what=f"a person's turn (before step {before})")
        if stop is not None:
            return stop
    for item in human.actions:
        settler.before_act(item.action)
        executor.perform(item.action)
        settler.after_act()
    return None


def _walk_steps(run_dir, steps, capturer, executor, check, max_change, out_dir, on_step, settler,
                finder=None, humans=None) -> ReplayResult:  # fmt: skip
    done, found_again, people = 0, list[int](), 0
    waiting = sorted(humans or [], key=lambda h: h.after_step)

    def people_before(step: int) -> ReplayResult | None:
        nonlocal people
        while waiting and waiting[0].after_step < step:
            stop = _person_turn(waiting.pop(0), run_dir, capturer, executor, check, max_change, out_dir, settler)
            if stop is not None:
                return stop.model_copy(update={"steps_replayed": done, "found_by_element": found_again,
                                               "person_turns": people})
            people += 1
        return None

    ended = False
    for rec in steps:
        if (stop := people_before(rec.step)) is not None:
            return stop
        largest = None
        frame = capturer.grab()
        settler.frame_taken()
        action = rec.action
        if check and rec.screenshot and (run_dir / rec.screenshot).is_file():
            with Image.open(run_dir / rec.screenshot) as img:
                recorded = img.convert("RGB")
            stop, largest = _diverged(rec, frame, recorded, capturer, max_change, out_dir)
            if stop is not None:
                moved = _moved(rec, finder)
                if moved is None:
                    return stop.model_copy(update={"steps_replayed": done, "found_by_element": found_again,
                                                   "person_turns": people})
                action = moved  # the screen moved, the widget is still there: click it where it is now
                found_again.append(rec.step)
        if on_step:
            on_step(rec.step, len(steps), largest)
        if action.type in TERMINAL_TYPES:
            done += 1
            ended = True
            break
        settler.before_act(action)
        executor.perform(action)
        settler.after_act()
        done += 1
    if not ended and steps and (stop := people_before(steps[-1].step + 1)) is not None:
        return stop  # a person's turn after the last performed step (the run ended while they had the desk)
    found = f"; step(s) {', '.join(map(str, found_again))} found their widget again by role and name" if found_again else ""
    person = f"; {people} turn(s) of a person done again" if people else ""
    return ReplayResult(ok=True, steps_replayed=done, found_by_element=found_again, person_turns=people,
                        message=f"replayed {done} step(s) without divergence{found}{person}")
