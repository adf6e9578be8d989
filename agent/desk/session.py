"""Starting a sandbox with its apps, the way `run`, `demo` and `replay` all do."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Any, Collection, Literal, Sequence

from pydantic import BaseModel, Field

from deskpilot.agent.desk.screens import settle_blocking
from deskpilot.errors import ConfigError, UsageError

SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_LOCATOR_TIMEOUT = 5.0  # seconds a locator waits for its element (agent/desk/locator.py)


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080)."""
    try:
        w, h = (int(v) for v in str(text).lower().replace("×", "x").split("x"))
    except ValueError:
        raise ConfigError(f"a screen size is WIDTHxHEIGHT, e.g. 1920x1080; got {text!r}") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ConfigError(f"screen size {w}x{h} is out of range (64 to 8192 per side)")
    return w, h


class AppSpec(BaseModel):
    """An app to start in the sandbox: argv plus host folders it needs to see."""

    argv: list[str]
    binds: list[dict[str, Any]] = Field(default_factory=list)  # {"host": str, "writable": bool}


class VncOption(BaseModel):
    """`--vnc [PORT]` / `--view-only`: a VNC server on the desk for a person (port 0: any free one)."""

    port: int = Field(0, ge=0, le=65535)
    view_only: bool = False


class SessionSpec(BaseModel):
    """Everything needed to bring the same desktop up again (kept for replay)."""

    size: tuple[int, int] = (1920, 1080)
    isolation: Literal["bwrap", "none"] = "bwrap"
    network: bool = False
    shares: list[str] = Field(default_factory=list)
    apps: list[AppSpec] = Field(default_factory=list)
    maximize: bool = True  # apps' normal windows start maximized
    vnc: VncOption | None = Field(None, exclude=True)  # how a person may look in; not part of the desktop itself
    accessibility: bool = True  # a private AT-SPI bus, so locators and checks can read the apps' widgets
    office_gtk3: bool = False  # LibreOffice on its GTK3 plugin (publishes a tree; looks different from its own)


def start_vnc_for(sb, spec: SessionSpec) -> None:
    """Start the VNC server ``spec`` asks for and print its one line (vnc://:PASSWORD@127.0.0.1:PORT) on stderr.

    stderr, not a log: the password is for the person at this terminal, and
    is never written into the run's records.
    """
    if spec.vnc is None:
        return
    import sys

    server = sb.start_vnc(spec.vnc.port or None, view_only=spec.vnc.view_only)
    sys.stderr.write(server.url + "\n")
    sys.stderr.flush()


def app_from_command(command: str, *, cwd: str | Path | None = None, shares: Sequence[str | Path] = (),
                     from_data: "bool | Collection[int]" = False) -> AppSpec:
    """An app command; rules in agent/desk/apps.py (no link inside ``shares`` is followed).

    ``from_data``: the command came from data, not from the user (an MCP
    client), or the indexes of its arguments that did (a workflow's CSV row
    values or answers): such paths must lie inside the shares.
    """
    from deskpilot.agent.desk.apps import parse_command

    argv, binds = parse_command(command, cwd=cwd, shares=shares, from_data=from_data)
    return AppSpec(argv=argv, binds=binds)


def open_sandbox(spec: SessionSpec, *, create_shares: bool = False):
    """Start the sandbox and its apps -> (sandbox, app handles); the caller closes the sandbox."""
    from deskpilot.sandbox import Bind, Sandbox

    for share in spec.shares:
        if create_shares:
            Path(share).mkdir(parents=True, exist_ok=True)
        elif not Path(share).is_dir():
            raise UsageError(f"shared folder {share} does not exist (or is not a folder)")
    from deskpilot.agent.desk.apps import plan_binds

    binds = [Bind(host=Path(s), writable=True) for s in spec.shares]
    app_binds = [plan_binds(app.binds, spec.shares) for app in spec.apps]  # bad binds fail before start-up
    width, height = spec.size
    sb = Sandbox(size=(width, height), isolation=spec.isolation, network=spec.network, binds=binds,
                 maximize=spec.maximize, accessibility=spec.accessibility, office_gtk3=spec.office_gtk3)
    handles = []
    try:
        start_vnc_for(sb, spec)
        from deskpilot.agent.desk.office import prepare_home

        prepare_home(sb.home, [app.argv for app in spec.apps], spec.shares)  # no first-start dialogs
        sb.give_to_apps(sb.home / ".config")  # the apps' user must be able to write its own settings
        for app, extra in zip(spec.apps, app_binds):
            handles.append(sb.launch(app.argv, binds=extra))
    except BaseException:
        sb.close()
        raise
    return sb, handles


def _tail(path, lines: int = 3, window: int = 65536) -> str:
    """The last lines of an app's log, from its last ``window`` bytes (an app may have written gigabytes)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - window))
            text = f.read(window).decode("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def wait_until_ready(sb, capturer, *, timeout: float = 60.0, handles=(), has_apps: bool = True) -> None:
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
                said = "".join(f" | {h.argv[0]}: {_tail(h.stderr_path, 2)}" for h in handles if _tail(h.stderr_path, 2))
                state = sb.diagnose() if hasattr(sb, "diagnose") else ""
                raise SandboxError(f"no app window appeared within {timeout:g} s ({state}){said}") from None
    remaining = max(0.5, timeout - (time.monotonic() - started))
    from deskpilot.agent.desk.settle import wait_quiet
    from deskpilot.perception.damage import DamageUnavailable, DamageWatcher

    try:  # nothing drawn for 0.2 s (a blinking caret aside); frame comparison without DAMAGE
        with DamageWatcher(sb.display, getattr(sb, "xauthority", None)) as watcher:
            wait_quiet(watcher, quiet_s=0.2, cap_s=min(5.0, remaining))
    except DamageUnavailable:
        settle_blocking(capturer.grab, first_delay=0.2, interval=0.1, cap=min(5.0, remaining))


def _app_spec(app: "str | AppSpec | Sequence[str]", shares: Sequence[str | Path] = (),
              from_data: "bool | Collection[int]" = False, cwd: str | Path | None = None) -> AppSpec:
    if isinstance(app, AppSpec):
        return app
    if isinstance(app, str):
        return app_from_command(app, cwd=cwd, shares=shares, from_data=from_data)
    if isinstance(app, (list, tuple)) and app and all(isinstance(a, str) for a in app):
        return app_from_command(shlex.join(app), cwd=cwd, shares=shares, from_data=from_data)
    raise UsageError(f"an app is a command string such as 'xterm' or a list of arguments, got {app!r}")


def _size(size: "tuple[int, int] | str") -> tuple[int, int]:
    if isinstance(size, str):
        return parse_size(size)
    try:
        w, h = size
    except (TypeError, ValueError):
        raise UsageError(f"size is (width, height) or 'WIDTHxHEIGHT', got {size!r}") from None
    if not (isinstance(w, int) and isinstance(h, int)) or isinstance(w, bool) or isinstance(h, bool):
        raise UsageError(f"size must be whole pixels, got {size!r}")
    return w, h


class Session:
    """A desktop ready to work on: sandbox, apps, screen capture and input.

    This is the one door every front end uses (the CLI, replay, the pytest
    plugin, workflows, the eval harness, MCP): it starts the display and the
    apps, waits until a window is up and the screen is still, and owns the
    capturer and the input worker. Exported as ``deskpilot.Sandbox``.

    The computer-control methods take pixels and go through the same typed
    actions and executor as the agent; each waits for the screen to settle,
    so a screenshot taken next shows the result.
    """

    def __init__(
        self,
        size: "tuple[int, int] | str" = (1920, 1080),
        apps: "Sequence[str | AppSpec | Sequence[str]]" = (),
        shares: "Sequence[str | os.PathLike[str]]" = (),
        *,
        isolation: Literal["bwrap", "none"] = "bwrap",
        network: bool = False,
        maximize: bool = True,
        ready_timeout: float = 60.0,
        spec: SessionSpec | None = None,
        create_shares: bool = False,
        accessibility: bool = True,
        office_gtk3: bool = False,
    ) -> None:
        if isinstance(apps, str):
            apps = [apps]
        if isinstance(shares, (str, os.PathLike)):
            shares = [shares]
        if spec is None:
            folders = [os.path.abspath(s) for s in shares]
            spec = SessionSpec(size=_size(size), isolation=isolation, network=network, maximize=maximize,
                               shares=folders, apps=[_app_spec(a, folders) for a in apps],
                               accessibility=accessibility, office_gtk3=office_gtk3)
        self.spec = spec
        self.sandbox, self.apps = open_sandbox(spec, create_shares=create_shares)
        self._capturer = None
        self._executor = None
        self._settler = None
        self._a11y = None
        self.locator_timeout = DEFAULT_LOCATOR_TIMEOUT
        self.shares: dict[str, Path] = {s: Path(s) for s in spec.shares}  # as the apps see it -> on the host
        self._share_binds: list = []  # the shares are bound for the whole sandbox here
        self.started_s = 0.0
        self.start_failures: list = []  # DeskStartErrors of desks that failed before this one (a pool retries)
        try:
            wait_until_ready(self.sandbox, self.capturer, timeout=ready_timeout, handles=self.apps,
                             has_apps=bool(spec.apps))
        except BaseException:
            self.close()
            raise

    @classmethod
    def adopt(cls, spec: SessionSpec, sandbox, apps: list, *, capturer=None, executor=None,
              shares: dict[str, Path] | None = None, share_binds: Sequence = (), started_s: float = 0.0) -> "Session":
        """A Session around a desktop someone else started and made ready (the sandbox pool).

        ``shares`` maps each shared folder as the apps see it to the host folder
        backing it (a private copy in a pool's fresh desk); ``share_binds`` are
        added to every later `launch` so new apps see the same folders.
        The spec is copied: `launch` records new apps in this session's spec only.
        """
        self = cls.__new__(cls)
        self.spec = spec.model_copy(deep=True)
        self.sandbox, self.apps = sandbox, list(apps)
        self._capturer, self._executor, self._settler = capturer, executor, None
        self._a11y = None
        self.locator_timeout = DEFAULT_LOCATOR_TIMEOUT
        self.shares = dict(shares) if shares is not None else {s: Path(s) for s in spec.shares}
        self._share_binds = list(share_binds)
        self.started_s = started_s
        self.start_failures = []
        return self

    def host_path(self, path: "str | os.PathLike[str]") -> Path:
        """Where a path the apps see lives on the host (inside a pool's private share copy: in the copy)."""
        path = Path(path)
        for inside, host in self.shares.items():
            if path == Path(inside) or Path(inside) in path.parents:
                return host / path.relative_to(inside)
        return path

    # -- what it is -------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.sandbox.size)  # type: ignore[return-value]

    @property
    def display(self) -> str:
        return self.sandbox.display

    @property
    def capturer(self):
        """The screen grabber (one per session; mss over MIT-SHM)."""
        if self._capturer is None:
            from deskpilot.perception import Capturer

            self._capturer = Capturer(self.sandbox)
        return self._capturer

    @property
    def executor(self):
        """The input worker (started on first use)."""
        if self._executor is None:
            from deskpilot.actions.executor import Executor

            self._executor = Executor.for_sandbox(self.sandbox)
        return self._executor

    # -- seeing ---------------------------------------------------------------------
    def observe(self):
        """The current screen as an Observation (image, size, time)."""
        return self.capturer.grab()

    def screenshot(self, path: "str | os.PathLike[str] | None" = None):
        """The current screen as a PIL image; also saved as PNG when `path` is given."""
        image = self.observe().image
        if path is not None:
            from deskpilot.perception.encode import encode_png

            Path(path).write_bytes(encode_png(image))
        return image

    @property
    def settler(self):
        """The event-driven wait after actions (agent.desk.settle; X DAMAGE, frames without it)."""
        if self._settler is None:
            from deskpilot.agent.desk.settle import Settler

            self._settler = Settler.open(self.capturer)
        return self._settler

    def settle(self, cap: float = 2.0) -> None:
        """Wait until the screen stops changing (at most `cap` seconds)."""
        from deskpilot.agent.desk.settle import wait_quiet

        if self.settler.watcher is not None:
            wait_quiet(self.settler.watcher, quiet_s=0.05, cap_s=cap)  # nothing drawn for 50 ms
        else:
            settle_blocking(self.capturer.grab, cap=cap)

    # -- elements (the accessibility tree, see agent/desk/locator.py) -------------------
    @property
    def a11y(self):
        """The reader of this desk's accessibility bus (perception.a11y.A11yReader)."""
        if self._a11y is None:
            from deskpilot.perception.a11y import A11yError, A11yReader

            address = self.sandbox.a11y_address
            if address is None:
                raise A11yError("this desk has no accessibility bus (accessibility=False, or dbus-daemon and "
                                "at-spi2-core are not installed)")
            self._a11y = A11yReader(address)
        return self._a11y

    def a11y_snapshot(self, *, time_limit: float = 1.0, max_nodes: int = 3000, max_depth: int = 40, **more):
        """A bounded read of every app's widget tree (perception.a11y.Snapshot; ``more``: its other bounds)."""
        return self.a11y.snapshot(time_limit=time_limit, max_nodes=max_nodes, max_depth=max_depth, **more)

    def app_names(self) -> list[str]:
        return [Path(app.argv[0]).name for app in self.apps]

    def get_by_role(self, role: str, name=None, *, exact: bool = False, checked: bool | None = None,
                    disabled: bool | None = None):
        """Locator of elements by ARIA or AT-SPI role and accessible name, e.g. ("button", name="Save")."""
        from deskpilot.agent.desk.locator import Locator, role_query

        return Locator(self, role_query(role, name, exact, checked, disabled))

    def get_by_text(self, text, *, exact: bool = False):
        """Locator of elements whose name or text holds ``text``."""
        from deskpilot.agent.desk.locator import Locator
        from deskpilot.perception.a11y import Query

        return Locator(self, Query(text=text, exact=exact))

    def get_by_label(self, label, *, exact: bool = False):
        """Locator of form fields named by their label (GTK ties a label to its field)."""
        from deskpilot.agent.desk.locator import Locator
        from deskpilot.perception.a11y import Query

        return Locator(self, Query(label=label, exact=exact))

    # -- acting -----------------------------------------------------------------------
    def perform(self, action, *, settle: bool = True) -> None:
        """Perform one typed action (deskpilot.actions) inside this desktop; then wait for what it does."""
        waits = settle and action.type not in ("done", "fail", "wait")
        if waits:
            self.settler.before_act(action)
        self.executor.perform(action)
        if waits:
            self.settler.after_act()

    def click(self, x: int, y: int, button: Literal["left", "right", "middle"] = "left") -> None:
        from deskpilot.actions.models import Click

        self.perform(Click(x=x, y=y, button=button))

    def double_click(self, x: int, y: int) -> None:
        from deskpilot.actions.models import DoubleClick

        self.perform(DoubleClick(x=x, y=y))

    def right_click(self, x: int, y: int) -> None:
        self.click(x, y, button="right")

    def move(self, x: int, y: int) -> None:
        from deskpilot.actions.models import Hover

        self.perform(Hover(x=x, y=y))

    def drag(self, x1: int, y1: int, x2: int, y2: int) -> None:
        from deskpilot.actions.models import Drag

        self.perform(Drag(x=x1, y=y1, to_x=x2, to_y=y2))

    def scroll(self, x: int, y: int, direction: Literal["up", "down", "left", "right"] = "down",
               amount: int = 5) -> None:
        from deskpilot.actions.models import Scroll

        self.perform(Scroll(x=x, y=y, direction=direction, amount=amount))

    def type(self, text: str) -> None:
        """Type any Unicode text at the keyboard focus."""
        from deskpilot.actions.models import Type

        self.perform(Type(text=text))

    def key(self, combo: str) -> None:
        """Press a key or chord, e.g. 'enter', 'ctrl+s', 'ctrl+shift+t'."""
        from deskpilot.actions.models import Key

        self.perform(Key.model_validate({"keys": combo}))

    def launch(self, command: "str | AppSpec | Sequence[str]", *, wait: bool = True, timeout: float = 20.0,
               from_data: "bool | Collection[int]" = False, cwd: "str | os.PathLike[str] | None" = None):
        """Start another app (same parsing and binding rules as --app); returns its handle.

        ``from_data=True`` when the command is not the user's own text (an MCP
        client's request), or the indexes of the arguments that are not (a
        workflow's row values): those may name paths inside this desktop's
        shares only (agent/desk/apps.py).
        ``cwd``: what relative paths in the command are relative to (default: ours).
        """
        from deskpilot.agent.desk.apps import plan_binds
        from deskpilot.agent.desk.office import prepare_home

        app = _app_spec(command, self.spec.shares, from_data, Path(cwd) if cwd is not None else None)
        extra = plan_binds(app.binds, self.spec.shares)
        prepare_home(self.sandbox.home, [app.argv], self.spec.shares)
        self.sandbox.give_to_apps(self.sandbox.home / ".config")
        handle = self.sandbox.launch(app.argv, binds=[*extra, *self._share_binds])  # shares last: never hidden
        self.apps.append(handle)
        self.spec.apps.append(app)
        if wait:
            wait_until_ready(self.sandbox, self.capturer, timeout=timeout, handles=[handle])
        return handle

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the input worker, the capturer, every app and the display (idempotent)."""
        for part in (self._settler, self._executor, self._capturer):
            if part is not None:
                try:
                    part.close()
                except Exception:  # closing must go on whatever one part says
                    pass
        self._settler = self._executor = self._capturer = None
        if self._a11y is not None:
            self._a11y.close()
            self._a11y = None
        self.sandbox.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<deskpilot.Sandbox {self.size[0]}x{self.size[1]} on {self.sandbox.display}>"
