"""Starting a sandbox with its apps, the way `run`, `demo` and `replay` all do."""

from __future__ import annotations

import os
import shlex
import shutil
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


_SYSTEM_DIRS = ("/usr/", "/etc/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/proc/", "/dev/")


def app_from_command(command: str) -> AppSpec:
    """A user's `--app "CMD ARGS"` (their own text, never model output).

    Arguments that name existing host files or folders outside the system
    directories are made visible inside the sandbox, read-only, at the same
    absolute path; relative paths are made absolute.
    """
    argv = shlex.split(command)
    if not argv:
        raise UsageError("--app needs a command, e.g. --app xterm")
    if "/" not in argv[0] and shutil.which(argv[0]) is None:
        raise UsageError(f"app {argv[0]!r} is not installed (not found on PATH)")
    if "/" in argv[0] and not Path(argv[0]).exists():
        raise UsageError(f"app {argv[0]!r} does not exist")
    binds: list[dict[str, Any]] = []
    for i, arg in enumerate(argv):
        if i == 0 and "/" not in arg:
            continue  # a program found on PATH
        if not Path(arg).exists() or (i > 0 and "/" not in arg and not Path(arg).is_file()):
            continue
        path = Path(os.path.abspath(arg))  # keep symlinks: /bin/sh stays /bin/sh
        argv[i] = str(path)
        if str(path).startswith(_SYSTEM_DIRS):
            continue
        folder = str(path if path.is_dir() else path.parent)
        if all(b["host"] != folder for b in binds):
            binds.append({"host": folder, "writable": False})
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
    binds = [Bind(host=Path(s), writable=True) for s in spec.shares]
    sb = Sandbox(size=tuple(spec.size), isolation=spec.isolation, network=spec.network, binds=binds)
    handles = []
    try:
        for app in spec.apps:
            extra = [Bind(host=Path(b["host"]), writable=bool(b.get("writable"))) for b in app.binds]
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
    from deskpilot.agent.settle import wait_quiet
    from deskpilot.perception.damage import DamageUnavailable, DamageWatcher

    try:  # nothing drawn for 0.2 s (a blinking caret aside); frame comparison without DAMAGE
        with DamageWatcher(sb.display, getattr(sb, "xauthority", None)) as watcher:
            wait_quiet(watcher, quiet_s=0.2, cap_s=min(5.0, remaining))
    except DamageUnavailable:
        settle_blocking(capturer.grab, first_delay=0.2, interval=0.1, cap=min(5.0, remaining))
