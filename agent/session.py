"""Starting a sandbox with its apps, the way `run`, `demo` and `replay` all do."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from deskpilot.agent.screens import settle_blocking
from deskpilot.errors import UsageError

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_APP = DEMO_DIR / "form_app.py"
DEMO_REPLIES = DEMO_DIR / "replies.json"
DEMO_TASK = (
    "Fill in the contact form with the name 'Ada Lovelace' and the email "
    "'ada@example.org', then save it."
)
SYSTEM_PYTHON = "/usr/bin/python3"


class AppSpec(BaseModel):
    """An app to start in the sandbox: argv plus host folders it needs to see."""

    argv: list[str]
    binds: list[dict[str, Any]] = Field(default_factory=list)  # {"host": str, "writable": bool}


class SessionSpec(BaseModel):
    """Everything needed to bring the same desktop up again (kept for replay)."""

    size: tuple[int, int] = (1920, 1080)
    isolation: str = "bwrap"
    network: bool = False
    shares: list[str] = Field(default_factory=list)
    apps: list[AppSpec] = Field(default_factory=list)
    maximize: bool = True  # apps' normal windows start maximized


def app_from_command(command: str, *, cwd: str | Path | None = None) -> AppSpec:
    """A user's `--app "CMD ARGS"` (their own text, never model output); rules in agent/apps.py."""
    from deskpilot.agent.apps import parse_command

    argv, binds = parse_command(command, cwd=cwd)
    return AppSpec(argv=argv, binds=binds)


def demo_app(save_to: Path, layout: str = "standard") -> AppSpec:
    return AppSpec(
        argv=[SYSTEM_PYTHON, str(DEMO_APP), "--save-to", str(save_to), "--layout", layout],
        binds=[{"host": str(DEMO_DIR), "writable": False}],
    )


def open_sandbox(spec: SessionSpec, *, create_shares: bool = False):
    """Start the sandbox and its apps -> (sandbox, app handles); the caller closes the sandbox."""
    from deskpilot.sandbox import Bind, Sandbox

    for share in spec.shares:
        if create_shares:
            Path(share).mkdir(parents=True, exist_ok=True)
        elif not Path(share).is_dir():
            raise UsageError(f"shared folder {share} does not exist (or is not a folder)")
    from deskpilot.agent.apps import plan_binds

    binds = [Bind(host=Path(s), writable=True) for s in spec.shares]
    app_binds = [plan_binds(app.binds, spec.shares) for app in spec.apps]  # bad binds fail before start-up
    sb = Sandbox(size=tuple(spec.size), isolation=spec.isolation, network=spec.network, binds=binds,
                 maximize=spec.maximize)
    handles = []
    try:
        from deskpilot.agent.office import prepare_home

        prepare_home(sb.home, [app.argv for app in spec.apps])  # no first-start dialogs
        for app, extra in zip(spec.apps, app_binds):
            handles.append(sb.launch(app.argv, binds=extra))
    except BaseException:
        sb.close()
        raise
    return sb, handles


def _tail(path, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def wait_until_ready(sb, capturer, *, timeout: float = 20.0, handles=(), has_apps: bool = True) -> None:
    """Wait for a first window, then for the screen to stop changing.

    If every app exits before showing a window, fail at once with what it
    printed, instead of waiting out the timeout.
    """
    from deskpilot.sandbox import SandboxError

    started = time.monotonic()
    while has_apps:
        try:
            sb.wait_for_window("", timeout=0.25)
            break
        except SandboxError:
            if handles and all(h.poll() is not None for h in handles):
                h = handles[0]
                said = _tail(h.stderr_path) or _tail(h.stdout_path) or "no output"
                raise SandboxError(f"app {' '.join(h.argv)!r} exited with code {h.poll()} "
                                   f"before showing a window: {said}") from None
            if time.monotonic() - started > timeout:
                raise SandboxError(f"no app window appeared within {timeout:g} s") from None
    remaining = max(0.5, timeout - (time.monotonic() - started))
    settle_blocking(capturer.grab, first_delay=0.2, interval=0.1, cap=min(5.0, remaining))
