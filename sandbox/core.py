"""The Sandbox: a private X display with a window manager and isolated apps.

Lifetime and teardown (see ``_supervisor.py`` for the full story):

* Every process is forked from one long-lived thread (``spawn.py``) with a
  parent-death signal: Xvfb gets SIGTERM (it then removes its own socket),
  launchers get SIGKILL; bubblewrap's ``--die-with-parent`` and PID namespace
  take every descendant of an app down with its launcher, ``setsid`` daemons too.
* A reaper process watches a pipe from this process. ``close()`` closes the
  pipe and waits for the reaper; if this process is SIGKILLed the pipe closes
  by itself. Either way the reaper kills what is left, cleans X leftovers and
  SysV segments, and deletes the sandbox directory.

Privileges (when deskpilot runs as root): Xvfb gets a SysV IPC namespace of
its own that every app joins, and the apps run as an unprivileged host uid
(see ``isolation.py``); the sandbox's HOME, /tmp and the cookie file are
owned by that uid, everything else they see is read-only to them.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from deskpilot.sandbox import isolation as iso
from deskpilot.sandbox import a11ybus, spawn, wm, x11
from deskpilot.sandbox.app import App, describe_exit, describe_tree, exit_signal
from deskpilot.sandbox.binds import Bind
from deskpilot.sandbox.errors import DeskStartError, SandboxError, WindowNotFound
from deskpilot.sandbox.tools import require
from deskpilot.sandbox.vnc import VncServer, WebAccess, start_vnc
from deskpilot.sandbox.xauth import write_cookie
from deskpilot.sandbox.xvfb import start_xvfb
from Xlib.error import ConnectionClosedError, DisplayError as XDisplayError, XError

_SUPERVISOR = Path(__file__).with_name("_supervisor.py")
_DEPTHS = (8, 15, 16, 24, 30)
SLIRP_DNS = "10.0.2.3"  # slirp4netns's resolver address, forwarded to the host's resolvers


class Sandbox:
    """An Xvfb display + openbox; apps launched into it run under bubblewrap.

    Use as a context manager or call ``close()``; both are idempotent.
    ``env`` is for HOST-side clients (capture, input): DISPLAY and XAUTHORITY.
    """

    def __init__(
        self,
        size: tuple[int, int] = (1920, 1080),
        depth: int = 24,
        *,
        isolation: Literal["bwrap", "none"] = "bwrap",
        network: bool = False,
        binds: Sequence[Bind] = (),
        window_manager: bool = True,
        maximize: bool = False,
        root_dir: Path | None = None,
        accessibility: bool = True,
        office_gtk3: bool = False,
    ) -> None:
        self.size = _check_size(size)
        if depth not in _DEPTHS:
            raise SandboxError(f"depth must be one of {_DEPTHS}, got {depth}")
        if isolation not in ("bwrap", "none"):
            raise SandboxError(f"isolation must be 'bwrap' or 'none', got {isolation!r}")
        self.isolation = isolation
        self.maximize = maximize  # normal windows start maximized (an openbox rule)
        for bind in binds:
            if not bind.host.exists():
                raise SandboxError(f"bind source does not exist: {bind.host}")
        require("Xvfb")
        if window_manager:
            require("openbox")
        if isolation == "bwrap" and (problem := iso.bwrap_problem()):
            raise SandboxError(problem)
        self._lock = threading.Lock()
        self._closed = False
        self._apps: list[App] = []
        self._x = None
        self.wm: App | None = None
        self.vnc: VncServer | None = None
        self.vnc_web: WebAccess | None = None
        self.a11y_bus: App | None = None
        self._a11y_env: dict[str, str] = {}
        self._spawn_lock = threading.Lock()
        self.dir = Path(tempfile.mkdtemp(prefix="deskpilot-sandbox-", dir=root_dir))
        self.home, self.tmp, self._logs = (self.dir / n for n in ("home", "tmp", "logs"))
        self.xauthority = self.dir / "Xauthority"
        try:
            for folder in (self.home, self.tmp, self._logs):
                folder.mkdir()
            write_cookie(self.xauthority)
            self._give_to_apps(self.home, self.tmp, self.xauthority)
            self._seccomp = iso.write_seccomp(self.dir / "seccomp.bpf") if isolation == "bwrap" else None
            self._supervisor = _start_supervisor(self.dir)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(self, self._supervisor.stdin.close)
        self._ipc_fd: int | None = None
        self._net_fd: int | None = None
        self._helpers: list[subprocess.Popen] = []  # the network namespace's holder and slirp4netns
        try:
            own_ipc = iso.privileged()
            self._xvfb, number = start_xvfb(self.size, depth, self.xauthority, self._logs / "xvfb.log", new_ipc=own_ipc)
            self.display = f":{number}"
            self._register(f"xvfb {self._xvfb.pid} {number}")
            if own_ipc:
                self._ipc_fd = _open_ipc_namespace(self._xvfb.pid)
            bus_bind = self._prepare_a11y(office_gtk3) if accessibility else None
            self._a11y_env = self._a11y_env or a11ybus.office_env(office_gtk3)  # LibreOffice's look, pinned
            resolv = None
            if network and iso.privileged():
                self._net_fd = self._own_network()
                resolv = self.dir / "resolv.conf"
                resolv.write_text(f"nameserver {SLIRP_DNS}\n")
                resolv.chmod(0o644)
            self._layout = iso.Layout(
                display=number, xauthority=self.xauthority, home=self.home, tmp=self.tmp,
                identity=iso.write_identity(self.dir / "identity"), network=network,
                binds=tuple(binds) + ((bus_bind,) if bus_bind else ()), resolv_conf=resolv,
            )  # fmt: skip
            if bus_bind is not None:  # started first, waited for last: it comes up while openbox does
                self._start_a11y_bus(bus_bind)
            if window_manager:
                self._start_wm()
            if bus_bind is not None:
                self._wait_a11y_bus(bus_bind)
                self._announce_a11y_bus()
        except (SandboxError, OSError, XDisplayError, XError) as exc:
            logs = self._read_logs()  # before close() deletes them: the evidence of a machine fault
            self.close()
            raise DeskStartError(_start_failure(exc, logs), logs=logs) from exc
        except BaseException:
            self.close()
            raise

    # -- public API -------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """DISPLAY and XAUTHORITY for host-side clients of this display."""
        return {"DISPLAY": self.display, "XAUTHORITY": str(self.xauthority)}

    @property
    def a11y_address(self) -> str | None:
        """D-Bus address of this sandbox's accessibility bus, for host-side readers (None when off)."""
        if self.a11y_bus is None:
            return None
        return a11ybus.address(self.dir / "a11y" / a11ybus.SOCKET_NAME)

    @property
    def xvfb_pid(self) -> int:
        return self._xvfb.pid

    def launch(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        binds: Sequence[Bind] = (),
    ) -> App:
        """Start ``argv`` inside the sandbox; its output goes to log files."""
        argv = [str(a) for a in argv]
        if not argv:
            raise SandboxError("launch needs a program to run")
        self._check_open()
        env = {**self._a11y_env, **(env or {})}
        make_env = iso.bwrap_env if self.isolation == "bwrap" else iso.plain_env
        if "/" not in argv[0] and shutil.which(argv[0], path=make_env(self._layout, env).get("PATH")) is None:
            raise SandboxError(f"program not found: {argv[0]}")
        if self.isolation == "bwrap":
            cmd = iso.bwrap_argv(self._layout, argv, cwd=cwd, binds=binds, seccomp=self._seccomp)
            full_env, run_cwd = iso.bwrap_env(self._layout, env), None
        else:
            cmd = iso.plain_argv(argv, binds)
            full_env, run_cwd = iso.plain_env(self._layout, env), cwd or str(self.home)
        return self._spawn(cmd, argv, full_env, run_cwd)

    @property
    def apps(self) -> list[App]:
        """The apps launched so far (not the window manager)."""
        return list(self._apps)

    def problem(self) -> str | None:
        """None while the desktop is whole, else one line saying what broke.

        Broken means: the X server or the window manager exited, or an app died
        from a signal (a crash, or killed). An app that exits with a code of its
        own just finished; that is not a problem of the desktop.
        """
        if self._closed:
            return "the sandbox is closed"
        if (code := self._xvfb.poll()) is not None:
            return f"the X server (Xvfb on {self.display}) exited: {describe_exit(code)}"
        if self.wm is not None and (code := self.wm.poll()) is not None:
            return f"the window manager (openbox) exited: {describe_exit(code)}"
        for app in self._apps:
            code = app.poll()
            if code is not None and exit_signal(code) is not None:
                return f"app {' '.join(app.argv)[:120]!r} crashed: {describe_exit(code)}"
        return None

    def diagnose(self) -> str:
        """One line on the desktop's state, for error messages: apps, windows, what broke."""
        parts = [self.problem() or "X server and window manager running"]
        for app in self._apps:
            code = app.poll()
            state = f"running ({describe_tree(app.pid)})" if code is None else describe_exit(code)
            parts.append(f"{Path(app.argv[0]).name}: {state}")
        try:
            with self._lock:
                if self._x is None:
                    self._x = x11.connect(self.display, self.xauthority)
                managed = len(x11.client_windows(self._x))
                parts.append(f"{x11.mapped_top_levels(self._x)} mapped top-level windows, {managed} managed")
        except Exception as exc:  # a diagnosis must not fail
            parts.append(f"X not readable ({type(exc).__name__})")
        return "; ".join(parts)

    def wait_for_window(self, title: str, timeout: float = 10.0, *, ignore_case: bool = False) -> int:
        """X id of a managed top-level window whose title contains ``title``.

        On timeout the error (``WindowNotFound``) lists the titles that were
        there, since a near miss ("mousepad" for "Mousepad") is the usual cause.
        """
        self._check_open()
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._x is None:
                self._x = x11.connect(self.display, self.xauthority)
            with x11.root_changes(self._x) as changed:
                while (wid := x11.find_window(self._x, title, ignore_case=ignore_case)) is None:
                    left = deadline - time.monotonic()
                    if left < 0:
                        titles = x11.window_titles(self._x)
                        seen = ", ".join(repr(t) for t in titles) if titles else "none"
                        raise WindowNotFound(f"no window titled {title!r} appeared on {self.display} within "
                                             f"{timeout:g} s (windows: {seen})", titles)
                    # a new window wakes this at once (the manager's client list); a title set later
                    # changes the window's own property, not the root's: looked at again within 50 ms
                    changed(min(left, 0.05 if title else 0.5))
        return wid

    def start_vnc(self, port: int | None = None, *, view_only: bool = False) -> VncServer:
        """A VNC server on this display (127.0.0.1, one-time password); one per sandbox.

        It is registered with the reaper like an app: it ends with the sandbox,
        also when the owner is SIGKILLed. ``port`` None: x11vnc picks a free one from 5900.
        """
        with self._spawn_lock:
            self._check_open()
            if self.vnc is not None and self.vnc.alive():
                return self.vnc
            server = start_vnc(self.display, self.xauthority, self.dir, port=port, view_only=view_only, ipc_fd=self._ipc_fd)
            self._register(f"pid {server.pid}")
            self.vnc = server
        return server

    def start_vnc_web(self) -> WebAccess:
        """noVNC for a browser page (websockify, 127.0.0.1, token-guarded), on this sandbox's VNC server."""
        with self._spawn_lock:
            self._check_open()
            if self.vnc is None:
                raise SandboxError("start_vnc first: noVNC needs the sandbox's VNC server")
            if self.vnc_web is None:
                proc, web = self.vnc.start_web(self.dir)
                self._web_proc = proc
                self._register(f"pid {proc.pid}")
                self.vnc_web = web
        return self.vnc_web

    def close(self) -> None:
        """Stop everything the sandbox started and delete its directory."""
        with self._spawn_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            if self._x is not None:
                try:
                    self._x.close()
                except (OSError, XError, ConnectionClosedError):  # the X server is gone already: nothing to flush
                    pass
                self._x = None
        self._finalizer()
        try:
            self._supervisor.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._supervisor.kill()
        self._reap()
        if self._ipc_fd is not None:
            os.close(self._ipc_fd)
            self._ipc_fd = None
        if getattr(self, "_net_fd", None) is not None:
            os.close(self._net_fd)  # type: ignore[arg-type]
            self._net_fd = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Sandbox(display={getattr(self, 'display', '?')!r}, size={self.size}, {self.isolation}, {state})"

    # -- internals --------------------------------------------------------

    def _read_logs(self, limit: int = 64 * 1024) -> dict[str, str]:
        """The display's and window manager's logs (the last ``limit`` bytes of each), by file name."""
        logs: dict[str, str] = {}
        for path in sorted(self._logs.glob("*")) if self._logs.is_dir() else []:
            try:
                with open(path, "rb") as f:
                    f.seek(max(0, path.stat().st_size - limit))
                    logs[path.name] = f.read().decode("utf-8", "replace")
            except OSError:
                continue
        return logs

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox is closed")

    def _register(self, line: str) -> None:
        """Tell the reaper about a process and wait until it holds a pidfd for it."""
        self._supervisor.stdin.write(line + "\n")
        self._supervisor.stdin.flush()
        if self._supervisor.stdout.readline() != "ok\n":
            raise SandboxError("the sandbox's reaper process died")

    def _spawn(self, cmd: list[str], argv: list[str], env: dict[str, str], cwd: str | None) -> App:
        fds: list[int] = []
        mark = iso.SECCOMP_FD_PLACEHOLDER
        if self._seccomp is not None and any(mark in arg for arg in cmd):  # also inside the launcher's spec
            fds.append(os.open(self._seccomp, os.O_RDONLY | os.O_CLOEXEC))
            cmd = [arg.replace(mark, str(fds[0])) for arg in cmd]
        try:
            return self._spawn_with(cmd, argv, env, cwd, fds)
        finally:
            for fd in fds:
                os.close(fd)

    def _spawn_with(self, cmd: list[str], argv: list[str], env: dict[str, str], cwd: str | None, fds: list[int]) -> App:
        with self._spawn_lock:
            self._check_open()
            name = f"{len(self._apps):02d}-{Path(argv[0]).name}"
            out, err = self._logs / f"{name}.out", self._logs / f"{name}.err"
            with open(out, "wb") as fout, open(err, "wb") as ferr:
                try:
                    proc = spawn.popen(
                        cmd, env=env, cwd=cwd, ipc_fd=self._ipc_fd, net_fd=self._net_fd, pass_fds=fds,
                        stdin=subprocess.DEVNULL,
                        stdout=fout, stderr=ferr, start_new_session=True,
                    )  # fmt: skip
                except FileNotFoundError:
                    raise SandboxError(f"program not found: {argv[0]}") from None
            app = App(proc, argv, out, err)
            self._apps.append(app)
            self._register(f"pid {proc.pid}")
        return app

    def _prepare_a11y(self, office_gtk3: bool) -> Bind | None:
        """The folder that will hold the accessibility bus's socket (None: dbus or AT-SPI not installed)."""
        if a11ybus.daemon_path() is None:
            return None
        folder = self.dir / "a11y"
        folder.mkdir(mode=0o700)
        bind = Bind(host=folder, target=a11ybus.INSIDE_DIR, writable=True)
        socket = bind.inside / a11ybus.SOCKET_NAME if self.isolation == "bwrap" else folder / a11ybus.SOCKET_NAME
        (folder / a11ybus.CONFIG_NAME).write_text(a11ybus.config(socket))
        self._give_to_apps(folder, folder / a11ybus.CONFIG_NAME)
        self._a11y_env = a11ybus.app_env(socket, office_gtk3=office_gtk3)
        return bind

    def _start_a11y_bus(self, bind: Bind) -> None:
        """Start the sandbox's accessibility bus (see ``a11ybus.py``); ``_wait_a11y_bus`` waits for it."""
        inside = bind.inside if self.isolation == "bwrap" else bind.host
        argv = [str(a11ybus.daemon_path()), "--nofork", "--nopidfile", "--nosyslog",
                f"--config-file={inside / a11ybus.CONFIG_NAME}"]  # fmt: skip
        env = {"AT_SPI_BUS_ADDRESS": self._a11y_env["AT_SPI_BUS_ADDRESS"]}  # for the registry it starts
        if self.isolation == "bwrap":
            cmd, full_env, cwd = iso.bwrap_argv(self._layout, argv, cwd=None, binds=[], seccomp=self._seccomp), iso.bwrap_env(self._layout, env), None
        else:
            cmd, full_env, cwd = iso.plain_argv(argv, []), iso.plain_env(self._layout, env), str(self.home)
        self.a11y_bus = self._spawn(cmd, argv, full_env, cwd)
        self._apps.remove(self.a11y_bus)

    def _wait_a11y_bus(self, bind: Bind) -> None:
        """Wait until the bus listens (apps started before would find no bus and publish nothing)."""
        assert self.a11y_bus is not None
        socket = bind.host / a11ybus.SOCKET_NAME
        deadline = time.monotonic() + 10
        while not socket.exists():  # dbus-daemon creates it once it listens
            if (code := self.a11y_bus.poll()) is not None:
                raise SandboxError(f"the accessibility bus (dbus-daemon) exited: {describe_exit(code)}")
            if time.monotonic() > deadline:
                raise SandboxError("the accessibility bus (dbus-daemon) did not start within 10 s")
            time.sleep(0.002)

    def _announce_a11y_bus(self) -> None:
        """Publish the bus's address on the display's root window (``AT_SPI_BUS``), as at-spi-bus-launcher does.

        Why: Qt 5 ignores ``AT_SPI_BUS_ADDRESS``; its bridge asks the session
        bus's ``org.a11y.Bus`` (which a sandbox does not have) or else reads
        this root-window property. libatspi reads it too as a fallback. The
        address is the one the apps see (inside the sandbox), and the display
        is this sandbox's own, so no other sandbox reads it.
        """
        with self._lock:
            if self._x is None:
                self._x = x11.connect(self.display, self.xauthority)
            x11.set_root_string(self._x, a11ybus.ROOT_PROPERTY, self._a11y_env["AT_SPI_BUS_ADDRESS"])

    def _start_wm(self) -> None:
        config = self.dir / "wm" / ".config" / "openbox"
        config.mkdir(parents=True)
        (config / "rc.xml").write_text(wm.safe_config(maximize=self.maximize))
        self._give_to_apps(self.dir / "wm", self.dir / "wm" / ".config", config)
        wm_home = Bind(host=self.dir / "wm", target=Path("/run/deskpilot/wm"), writable=True)
        home = str(wm_home.inside) if self.isolation == "bwrap" else str(wm_home.host)
        argv = [require("openbox"), "--sm-disable"]
        env = {"HOME": home, "XDG_CONFIG_HOME": f"{home}/.config", "XDG_CACHE_HOME": f"{home}/.cache"}
        if self.isolation == "bwrap":
            cmd = iso.bwrap_argv(self._layout, argv, cwd=home, binds=[wm_home], seccomp=self._seccomp)
            full_env = iso.bwrap_env(self._layout, env)
        else:
            cmd, full_env = iso.plain_argv(argv, []), iso.plain_env(self._layout, env)
        self.wm = self._spawn(cmd, argv, full_env, home if self.isolation == "none" else None)
        self._apps.remove(self.wm)
        with self._lock:  # the sandbox's own X connection, kept for wait_for_window (one connect, not two)
            if self._x is None:
                self._x = x11.connect(self.display, self.xauthority)
            wm.wait_for_wm(self.display, self.xauthority, alive=lambda: self.wm.poll() is None, conn=self._x)

    def _own_network(self) -> int:
        """A network namespace for the apps, with outbound access through slirp4netns; returns an fd on it.

        Why: with the host's namespace an app reaches every service listening
        on the host's 127.0.0.1 (an MCP server, a model server, databases).
        slirp4netns forwards the apps' connections from the host as ordinary
        sockets (no privileges on the host's network), and
        ``--disable-host-loopback`` refuses its gateway address (10.0.2.2)
        that would otherwise lead to the host's loopback. A holder process
        keeps the namespace; both are tracked by the reaper.
        """
        holder = spawn.popen([require("unshare"), "--net", "--", "/bin/sh", "-c", "echo ready; exec sleep infinity"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self._helpers.append(holder)
        self._register(f"pid {holder.pid}")
        assert holder.stdout is not None
        if holder.stdout.readline() != b"ready\n":  # unshare has made the namespace once the shell runs
            raise SandboxError("could not make a network namespace for the apps (unshare --net failed)")
        holder.stdout.close()
        net_fd = os.open(f"/proc/{holder.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        ready_r, ready_w = os.pipe()
        log = self._logs / "slirp4netns.log"
        try:
            with open(log, "wb") as out:
                slirp = spawn.popen([require("slirp4netns"), "--configure", "--mtu=65520", "--disable-host-loopback",
                                     "--enable-sandbox", "--enable-seccomp", f"--ready-fd={ready_w}", str(holder.pid),
                                     "tap0"], stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(ready_w,),
                                    start_new_session=True)  # fmt: skip
            self._helpers.append(slirp)
            self._register(f"pid {slirp.pid}")
            os.close(ready_w)
            ready_w = -1
            if not select.select([ready_r], [], [], 20)[0] or os.read(ready_r, 1) != b"1":
                said = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise SandboxError(f"slirp4netns did not bring the apps' network up: {said[0]}")
        except BaseException:
            os.close(net_fd)
            raise
        finally:
            os.close(ready_r)
            if ready_w >= 0:
                os.close(ready_w)
        return net_fd

    def give_to_apps(self, path: Path) -> None:
        """Hand a file or folder tree we wrote inside the sandbox (e.g. in its HOME) to the apps' user."""
        path = Path(path)
        if self.dir.resolve() not in path.resolve().parents:
            raise SandboxError(f"{path} is not inside the sandbox's own folder")
        if not path.exists():
            return
        tree = [path] + (sorted(path.rglob("*")) if path.is_dir() else [])
        self._give_to_apps(*tree)

    def _give_to_apps(self, *paths: Path) -> None:
        """Make the sandbox's own files the apps' (they run as another uid when we are root)."""
        if self.isolation == "bwrap" and iso.privileged():
            uid, gid = iso.app_ids()
            for path in paths:
                os.chown(path, uid, gid)

    def _reap(self) -> None:
        """Collect exit codes of our children (the reaper already killed them)."""
        procs = [a._proc for a in self._apps] + [x._proc for x in (self.wm, self.a11y_bus) if x is not None]
        procs += [self._xvfb] if hasattr(self, "_xvfb") else []
        procs += getattr(self, "_helpers", [])
        procs += [self.vnc._proc] if self.vnc is not None else []
        procs += [self._web_proc] if self.vnc_web is not None else []
        for proc in procs:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SandboxError(f"size must be (width, height), got {size!r}") from None
    if not (28 <= width <= 16384 and 28 <= height <= 16384):
        raise SandboxError(f"size {width}x{height} is out of range (28..16384 per side)")
    return width, height


def _open_ipc_namespace(pid: int) -> int:
    """fd of Xvfb's IPC namespace (held, so apps can join it even if Xvfb is gone)."""
    try:
        fd = os.open(f"/proc/{pid}/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SandboxError(f"cannot open the X server's IPC namespace: {exc.strerror}") from None
    if os.fstat(fd).st_ino == os.stat("/proc/self/ns/ipc").st_ino:
        os.close(fd)
        raise SandboxError("the X server did not get an IPC namespace of its own")
    return fd


def _start_supervisor(root: Path) -> subprocess.Popen:
    """Start the reaper; it must outlive us, so no death signal and its own session."""
    return spawn.popen(
        [sys.executable, "-I", "-S", str(_SUPERVISOR), str(root)],
        death_signal=None, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )  # fmt: skip


def _start_failure(exc: BaseException, logs: dict[str, str]) -> str:
    """One line: what failed, and the first and last thing the window manager said (if anything)."""
    said = [line.strip() for name, text in logs.items() if name.endswith(".err") for line in text.splitlines()]
    said = [line for line in said if line]
    message = str(exc) or type(exc).__name__
    if not said:
        return message
    return f"{message}: {said[0][:160]}" + (f" ... {said[-1][:160]}" if len(said) > 1 else "")
