"""Build the command line that runs one app isolated from the host.

``bwrap`` mode: bubblewrap gives the app its own user, PID and UTS namespaces
(and network namespace unless ``network=True``), a read-only view of the system
(/usr, /etc and the /bin /lib /lib64 /sbin links), a private HOME and /tmp that
live in the sandbox's directory, and only this sandbox's X socket and cookie.
IPC is NOT unshared: MIT-SHM needs the X server and the app to share SysV
segments. ``--die-with-parent`` plus the PID namespace mean the app and
everything it forks (even ``setsid`` daemons) die with the launcher.
PID 1 inside is a tiny reaper (``REAPER``): it runs the app, adopts whatever
the app leaves behind, and exits only when nothing is left, so launchers that
fork the real program and exit at once (xdg-open, many editors) keep their
windows; its exit code is the app's.

``none`` mode: a plain child process, in its own PID namespace through
``unshare --pid --fork --kill-child`` when that works here.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from deskpilot.sandbox.binds import Bind
from deskpilot.sandbox.errors import SandboxError
from deskpilot.sandbox.tools import require

INSIDE_HOME = Path("/home/user")
INSIDE_XAUTHORITY = Path("/run/deskpilot/Xauthority")
INSIDE_UID = 1000  # not 0: xterm & co. fail to chown their pty to a group unmapped in the user namespace
_SYSTEM_LINKS = ("/bin", "/lib", "/lib64", "/sbin")
_BASE_ENV_KEYS = ("LANG", "LC_ALL", "TZ")
_SYSTEM_PYTHON = "/usr/bin/python3"
REAPER = """
import os, sys
try:
    child = os.fork()
except OSError as exc:
    sys.exit(f"deskpilot reaper: {exc}")
if child == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as exc:
        print(f"cannot run {sys.argv[1]!r}: {exc.strerror}", file=sys.stderr)
        os._exit(127)
code = 0
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    except KeyboardInterrupt:
        continue
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


class Layout(BaseModel):
    """What every app of one sandbox shares."""

    model_config = ConfigDict(frozen=True)

    display: int
    xauthority: Path
    home: Path
    tmp: Path
    identity: Path  # folder holding the apps' passwd and group files
    network: bool = False
    binds: tuple[Bind, ...] = ()


def write_identity(folder: Path) -> Path:
    """passwd/group files naming the apps' user, so getpwuid() works inside."""
    folder.mkdir()
    (folder / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/sh\nuser:x:{INSIDE_UID}:{INSIDE_UID}:user:{INSIDE_HOME}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (folder / "group").write_text(f"root:x:0:\nuser:x:{INSIDE_UID}:\nnogroup:x:65534:\n")
    return folder


def _system_view() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    return args + ["--ro-bind-try", "/var/cache/fontconfig", "/var/cache/fontconfig"]


def _bind_args(binds: Sequence[Bind]) -> list[str]:
    args: list[str] = []
    for bind in binds:
        if not bind.host.exists():
            raise SandboxError(f"bind source does not exist: {bind.host}")
        args += ["--bind" if bind.writable else "--ro-bind", str(bind.host), str(bind.inside)]
    return args


def bwrap_argv(layout: Layout, argv: Sequence[str], *, cwd: str | None, binds: Sequence[Bind]) -> list[str]:
    """bubblewrap command line for ``argv`` in this sandbox."""
    socket = f"/tmp/.X11-unix/X{layout.display}"
    args = [require("bwrap"), "--unshare-user", "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID)]
    args += ["--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not layout.network:
        args.append("--unshare-net")
    args += ["--die-with-parent", "--new-session", "--hostname", "deskpilot"]
    args += _system_view()
    args += ["--ro-bind", str(layout.identity / "passwd"), "/etc/passwd"]
    args += ["--ro-bind", str(layout.identity / "group"), "/etc/group"]
    args += ["--proc", "/proc", "--dev", "/dev", "--dir", "/run"]
    args += ["--bind", str(layout.tmp), "/tmp", "--bind", str(layout.home), str(INSIDE_HOME)]
    args += ["--ro-bind", socket, socket, "--ro-bind", str(layout.xauthority), str(INSIDE_XAUTHORITY)]
    args += _bind_args((*layout.binds, *binds))
    args += ["--chdir", cwd or str(INSIDE_HOME)]
    if os.access(_SYSTEM_PYTHON, os.X_OK):
        return args + ["--as-pid-1", "--", _SYSTEM_PYTHON, "-c", REAPER, *argv]
    return args + ["--", *argv]


def bwrap_env(layout: Layout, extra: dict[str, str] | None) -> dict[str, str]:
    """The app's whole environment: nothing leaks in from the host but locale."""
    env = {key: os.environ[key] for key in _BASE_ENV_KEYS if key in os.environ}
    env.update(
        PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(INSIDE_HOME), USER="user", TMPDIR="/tmp",
        DISPLAY=f":{layout.display}", XAUTHORITY=str(INSIDE_XAUTHORITY),
    )  # fmt: skip
    env.update(extra or {})
    return env


def plain_argv(argv: Sequence[str], binds: Sequence[Bind]) -> list[str]:
    """Command line for ``isolation="none"``: own PID namespace when possible."""
    for bind in binds:
        if bind.target is not None and bind.target != bind.host:
            raise SandboxError(f"isolation='none' cannot show {bind.host} at {bind.target}: use isolation='bwrap'")
    prefix = unshare_prefix()
    return [*prefix, *argv]


def plain_env(layout: Layout, extra: dict[str, str] | None) -> dict[str, str]:
    """Host environment with this sandbox's display, cookie, HOME and TMPDIR."""
    env = dict(os.environ)
    env.update(
        DISPLAY=f":{layout.display}", XAUTHORITY=str(layout.xauthority), HOME=str(layout.home), TMPDIR=str(layout.tmp)
    )
    env.update(extra or {})
    return env


@functools.cache
def bwrap_problem() -> str | None:
    """None if bubblewrap can build our kind of sandbox here, else why not (one line)."""
    try:
        bwrap = require("bwrap")
    except SandboxError as exc:
        return str(exc)
    argv = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--die-with-parent"]
    argv += _system_view() + ["--proc", "/proc", "--dev", "/dev", "--", "/usr/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap self-test failed: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return f"bubblewrap cannot create namespaces here ({reason[0]}): allow unprivileged user namespaces or pass isolation='none'"
    return None


@functools.cache
def unshare_prefix() -> tuple[str, ...]:
    """``unshare`` prefix that puts an app in its own PID namespace, or () if impossible."""
    try:
        unshare = require("unshare")
    except SandboxError:
        return ()
    prefix = (unshare, "--pid", "--fork", "--kill-child")
    if os.geteuid() != 0:
        prefix = (unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child")
    try:
        done = subprocess.run([*prefix, "/usr/bin/true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if done.returncode == 0 else ()
