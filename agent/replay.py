"""Perform a recorded run again, without a model, checking the screen as it goes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from PIL import Image
from pydantic import BaseModel, ValidationError

from deskpilot.actions.models import TERMINAL_TYPES, action_from_json
from deskpilot.agent.screens import settle_blocking, similarity
from deskpilot.agent.session import SessionSpec, open_sandbox, wait_until_ready
from deskpilot.agent.trajectory import load_run


from deskpilot.errors import ReplayError


class ReplayResult(BaseModel):
    ok: bool
    steps_replayed: int
    diverged_at: int | None = None
    similarity: float | None = None
    message: str = ""


def session_of(run_dir: Path) -> SessionSpec:
    run = load_run(run_dir)
    if "session" not in run.settings:
        raise ReplayError(f"{run_dir} has no session settings (was it recorded by `deskpilot run`?)")
    try:
        return SessionSpec.model_validate(run.settings["session"])
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "session"
        raise ReplayError(f"{run_dir}: the recorded session is broken at {where}: {first['msg']}") from None


def _with_secrets(data, names: list[str], env: dict[str, str]):
    """Put secret values back where the recording says ***NAME***."""
    if isinstance(data, str):
        for name in names:
            data = data.replace(f"***{name}***", env[name])
        return data
    if isinstance(data, dict):
        return {k: _with_secrets(v, names, env) for k, v in data.items()}
    if isinstance(data, list):
        return [_with_secrets(v, names, env) for v in data]
    return data


def replay(
    run_dir: Path,
    *,
    check: bool = True,
    threshold: float = 0.97,
    session: SessionSpec | None = None,
    on_step: Callable[[int, int, float | None], None] | None = None,
) -> ReplayResult:
    """Replay in a fresh sandbox; stop at the first screen that differs too much."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    steps = [s for s in run.steps if s.action is not None and s.policy.allowed]
    if not steps:
        raise ReplayError(f"{run_dir} has no recorded actions to replay")
    secrets = list(run.settings.get("secrets") or [])
    missing = [name for name in secrets if name not in os.environ]
    if missing:
        raise ReplayError(f"the run used secret(s) {', '.join(missing)}: export them before replaying")
    for rec in steps:
        rec.action = action_from_json(_with_secrets(rec.action.model_dump(mode="json"), secrets, dict(os.environ)))
    spec = session or session_of(run_dir)
    from deskpilot.actions.executor import Executor
    from deskpilot.perception import Capturer

    sb, apps = open_sandbox(spec, create_shares=True)
    with sb:
        capturer = Capturer(sb)
        executor = Executor.for_sandbox(sb)
        try:
            wait_until_ready(sb, capturer, handles=apps, has_apps=bool(spec.apps))
            return _walk(run_dir, steps, capturer, executor, check, threshold, on_step)
        finally:
            executor.close()
            capturer.close()


def _walk(run_dir, steps, capturer, executor, check, threshold, on_step) -> ReplayResult:
    done = 0
    for rec in steps:
        score = None
        frame = capturer.grab()
        if check and rec.screenshot and (run_dir / rec.screenshot).is_file():
            with Image.open(run_dir / rec.screenshot) as recorded:
                score = similarity(recorded.convert("RGB"), frame.image)
            if score < threshold:
                return ReplayResult(
                    ok=False, steps_replayed=done, diverged_at=rec.step, similarity=round(score, 4),
                    message=(f"step {rec.step}: the screen differs from the recording "
                             f"(similarity {score:.3f} < {threshold}); stopped before acting"),
                )
        if on_step:
            on_step(rec.step, len(steps), score)
        action = rec.action
        if action.type in TERMINAL_TYPES:
            done += 1
            break
        executor.perform(action)
        settle_blocking(capturer.grab)
        done += 1
    return ReplayResult(ok=True, steps_replayed=done, message=f"replayed {done} step(s) without divergence")
