"""A VNC server on a sandbox's own display, so a person can watch or take over.

Debian's ``x11vnc`` serves the sandbox's Xvfb. It runs on the host side (like
capture and the executor, it is a client of the display holding its cookie),
joins Xvfb's SysV IPC namespace so MIT-SHM works, and is started through
``spawn.popen`` with a parent-death signal and registered with the sandbox's
reaper: it goes when the sandbox closes or its owner is SIGKILLed.

Access: it listens on 127.0.0.1 only, and asks for a random one-time password
of 8 characters (the RFB VNC-authentication limit). The password reaches
x11vnc through ``-passwdfile rm:FILE``: a file in the sandbox's folder, mode
0600, that x11vnc deletes once read, so the password is never on a command
line ``ps`` shows and not left on disk. (An ``-rfbauth`` file would hold the
same password under a fixed, public DES key: obfuscation, no better.)

``view_only`` can be flipped while it runs (``set_view_only``) through
x11vnc's remote control, an X property on the sandbox's root window: only a
holder of the display's cookie can send it, and such a holder can type into
the display anyway.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import socket
import string
import subprocess
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from deskpilot.sandbox import spawn
from deskpilot.sandbox.errors import SandboxError
from deskpilot.sandbox.tools import require

HOST = "127.0.0.1"
NOVNC = Path("/usr/share/novnc")  # Debian's novnc package: vnc.html and its scripts
_ALPHABET = string.ascii_letters + string.digits
_PORT_LINE = re.compile(r"^PORT=(\d+)\s*$")


class VncAccess(BaseModel):
    """How a VNC client reaches a sandbox: the address, the password, the mode."""

    model_config = ConfigDict(frozen=True)

    host: str = HOST
    port: int
    password: str
    view_only: bool = False

    @property
    def url(self) -> str:
        """``vnc://:PASSWORD@127.0.0.1:PORT``, the form VNC clients accept."""
        return f"vnc://:{self.password}@{self.host}:{self.port}"


def new_password() -> str:
    """8 random letters and digits (VNC authentication uses at most 8 characters)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(8))


def vnc_argv(display: str, xauthority: Path, passwd_file: Path, log: Path, port: int | None, view_only: bool) -> list[str]:
    """x11vnc's command line: loopback only, password from a self-deleting file, no extras."""
    argv = [
        require("x11vnc"), "-display", display, "-auth", str(xauthority),
        "-localhost", "-listen", HOST, "-noipv6", "-rfbportv6", "-1",
        "-passwdfile", f"rm:{passwd_file}", "-forever", "-shared",
        "-nocmds", "-norc", "-nolookup", "-nossl", "-o", str(log),
    ]  # fmt: skip
    if port is not None:
        argv += ["-rfbport", str(port)]
    if view_only:
        argv.append("-viewonly")
    return argv


class WebAccess(BaseModel):
    """noVNC in a browser: websockify serves its page and proxies a token-guarded WebSocket to x11vnc."""

    model_config = ConfigDict(frozen=True)

    port: int
    token: str
    pid: int

    def url(self, password: str, *, view_only: bool = False) -> str:
        """The noVNC page that connects by itself (the password and token ride in the query string)."""
        return (f"http://{HOST}:{self.port}/vnc.html?autoconnect=1&resize=off&reconnect=1"
                f"&view_only={int(view_only)}&password={password}&path=websockify%3Ftoken%3D{self.token}")


class VncServer:
    """A running x11vnc for one sandbox; ``stop()`` ends it (the sandbox's close does too)."""

    def __init__(self, proc: subprocess.Popen, access: VncAccess, display: str, xauthority: Path, log: Path) -> None:
        self._proc = proc
        self.access = access
        self._display, self._xauthority, self.log = display, xauthority, log
        self._lock = threading.Lock()
        threading.Thread(target=_drain, args=(proc,), name="x11vnc-stdout", daemon=True).start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def url(self) -> str:
        return self.access.url

    def alive(self) -> bool:
        return self._proc.poll() is None

    def set_view_only(self, view_only: bool) -> None:
        """Refuse (True) or accept (False) clients' keyboard and mouse from now on."""
        if view_only == self.access.view_only:
            return
        command = "viewonly" if view_only else "noviewonly"
        with self._lock:
            problem = ""
            for _ in range(5):  # x11vnc reads the property between its own events; a busy moment answers "no server"
                done = self._remote(["-sync", "-R", command])
                if done.returncode == 0 and self._remote(["-Q", "viewonly"]).stdout.strip().endswith(f":{int(view_only)}"):
                    self.access = self.access.model_copy(update={"view_only": view_only})
                    return
                problem = ((done.stderr or done.stdout).strip().splitlines() or ["no answer"])[-1]
                if not self.alive():
                    break
            raise SandboxError(f"x11vnc did not take '{command}': {problem[-200:]}")

    def _remote(self, args: list[str]) -> subprocess.CompletedProcess:
        """One x11vnc remote-control call (an X property on the display's root window)."""
        argv = [require("x11vnc"), "-display", self._display, "-auth", str(self._xauthority), *args]
        env = {**os.environ, "XAUTHORITY": str(self._xauthority)}
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 1, "", "x11vnc remote control timed out")

    def start_web(self, folder: Path, timeout: float = 20.0) -> tuple[subprocess.Popen, WebAccess]:
        """websockify on 127.0.0.1 serving noVNC; its WebSocket reaches x11vnc only with a random token.

        The caller registers the process with the sandbox's reaper (``Sandbox.start_vnc_web``).
        """
        if not (NOVNC / "vnc.html").is_file():
            raise SandboxError("noVNC is not installed (Debian package novnc; scripts/setup.sh installs it)")
        token = secrets.token_urlsafe(18)
        tokens = folder / "websockify.tokens"
        fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{token}: {HOST}:{self.access.port}\n")
        log = self.log.with_name("websockify.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}  # Debian's python3, not ours
        for _ in range(5):  # a free port now; another program may take it before websockify binds it
            port = _free_port()
            with open(log, "ab") as out:
                proc = spawn.popen(
                    [require("websockify"), "--web", str(NOVNC), "--token-plugin", "TokenFile",
                     "--token-source", str(tokens), f"{HOST}:{port}"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=env,
                )  # fmt: skip
            if _wait_listening(proc, port, timeout):
                return proc, WebAccess(port=port, token=token, pid=proc.pid)
            proc.kill()
            proc.wait()
        raise SandboxError(f"websockify did not start (see {log.name})")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def start_vnc(
    display: str, xauthority: Path, folder: Path, *, port: int | None = None, view_only: bool = False,
    ipc_fd: int | None = None, timeout: float = 20.0,
) -> VncServer:  # fmt: skip
    """Start x11vnc on ``display``; returns once it listens (it prints its port)."""
    password = new_password()
    passwd_file = folder / "vnc.passwd"
    fd = os.open(passwd_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    log = folder / "logs" / "x11vnc.log" if (folder / "logs").is_dir() else folder / "x11vnc.log"
    argv = vnc_argv(display, xauthority, passwd_file, log, port, view_only)
    proc = spawn.popen(
        argv, ipc_fd=ipc_fd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        bound = _read_port(proc, log, timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        passwd_file.unlink(missing_ok=True)
        raise
    access = VncAccess(port=bound, password=password, view_only=view_only)
    return VncServer(proc, access, display, xauthority, log)


def _read_port(proc: subprocess.Popen, log: Path, timeout: float) -> int:
    """x11vnc prints ``PORT=N`` on stdout once it listens; anything else first is a failure."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SandboxError(f"x11vnc did not start listening within {timeout:.0f} s (see {log.name})")
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            continue
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise SandboxError(f"x11vnc exited during startup: {_last_error(log)}")
        buffer += chunk
        for line in buffer.decode(errors="replace").splitlines():
            if found := _PORT_LINE.match(line):
                return int(found.group(1))


def _last_error(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    wanted = [ln for ln in lines if any(w in ln.lower() for w in ("error", "fail", "unable", "could not", "bind"))]
    return (wanted or lines or ["no log"])[-1][-200:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float) -> bool:
    """True once something accepts on ``port`` while ``proc`` lives (websockify prints nothing reliable)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            s.settimeout(1.0)
            if s.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _drain(proc: subprocess.Popen) -> None:
    """Keep reading x11vnc's stdout so it never blocks or gets SIGPIPE."""
    stream = proc.stdout
    if stream is None:
        return
    try:
        while os.read(stream.fileno(), 4096):
            pass
    except (OSError, ValueError):
        pass
