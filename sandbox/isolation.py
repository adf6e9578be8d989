"""Build the command line that runs one app isolated from the host.

``bwrap`` mode: bubblewrap gives the app its own PID and UTS namespaces (and
network namespace unless ``network=True``), a read-only view of the system
(/usr, the /bin /lib /lib64 /sbin links, and only the parts of /etc that
programs need: fonts, locale, the loader cache, X11 and toolkit settings, a
generated passwd/group; DNS and certificates only with ``network``), a private
HOME and /tmp that live in the sandbox's directory, and only this sandbox's X
socket and cookie. ``--die-with-parent`` plus the PID namespace mean the app
and everything it forks (even ``setsid`` daemons) die with the launcher.

Which host user the app is: when deskpilot runs as root, bubblewrap runs
privileged (no user namespace, every capability dropped but the three
``setpriv`` needs) and ``setpriv`` switches the app to the overflow uid/gid
(``nobody``) with no capabilities, an empty bounding set and no_new_privs
before anything of the app runs; so it cannot read root-only files it can
see. The switch happens in the app's process, not in PID 1: a change of uid
clears the parent-death signal, and PID 1 must keep it so that the whole
namespace dies with its launcher. Host folders given to the app are shown through idmapped mounts (see
``_launch.py``) so that uid can use them as their owner would. When deskpilot
runs as an ordinary user, bubblewrap maps the app to that same user (uid 1000
inside), which is no more than the user already has. As root the apps also get
a seccomp filter (``seccomp.py``): what they write into a share belongs to the
share's owner, so they must not be able to make set-user-ID files there.

SysV IPC: the sandbox's Xvfb runs in its own IPC namespace and every app
joins it (see ``Sandbox``): MIT-SHM works between the apps and their X server
while host segments are out of reach. Capture (mss) uses memfd-based MIT-SHM,
which needs no SysV segment. (As an ordinary user, no new IPC namespace can be
made that the capturer could share, so the host's is used.)

PID 1 inside is a tiny reaper (``PERL_REAPER``, or ``REAPER`` where Perl is missing): it runs the app, adopts whatever
the app leaves behind, and exits only when nothing is left, so launchers that
fork the real program and exit at once (xdg-open, many editors) keep their
windows; its exit code is the app's.

``none`` mode: a plain child process, in its own PID namespace through
``unshare --pid --fork --kill-child`` when that works here, with a clean
environment (nothing of the host's but locale) and the sandbox's IPC namespace.
"""

from __future__ import annotations

import functools
import json
import shutil
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from deskpilot.sandbox import seccomp
from deskpilot.sandbox.binds import Bind
from deskpilot.sandbox.errors import SandboxError
from deskpilot.sandbox.tools import require

INSIDE_HOME = Path("/home/user")
INSIDE_XAUTHORITY = Path("/run/deskpilot/Xauthority")
INSIDE_UID = 1000  # as an ordinary user; not 0: xterm & co. fail to chown their pty to a group unmapped in the user namespace
_SYSTEM_LINKS = ("/bin", "/lib", "/lib64", "/sbin")
_BASE_ENV_KEYS = ("LANG", "LC_ALL", "TZ")
_SYSTEM_PYTHON = "/usr/bin/python3"
_SYSTEM_PERL = "/usr/bin/perl"
_LAUNCHER = Path(__file__).with_name("_launch.py")
SECCOMP_FD_PLACEHOLDER = "<seccomp-fd>"
# What programs need from /etc. Not there: shadow files, ssh and TLS keys, sudo, pam,
# package-manager and tool configs that may hold tokens (pip.conf, npmrc, gitconfig), ...
ETC_FOR_APPS = (
    "fonts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias", "default/locale", "localtime",
    "timezone", "nsswitch.conf", "host.conf", "hosts", "alternatives", "X11", "xdg", "gtk-2.0", "gtk-3.0",
    "gtk-4.0", "dconf", "glvnd", "mime.types", "mailcap", "papersize", "libpaper.d", "libreoffice",
    "dictionaries-common", "python3", "python3.11", "os-release", "debian_version", "magic", "magic.mime",
    "inputrc", "bash.bashrc", "shells", "terminfo", "vim", "ImageMagick-6", "xml", "sgml", "protocols",
    "services", "chromium.d", "chromium",
)  # fmt: skip
ETC_FOR_NETWORK = ("resolv.conf", "gai.conf", "ssl", "ca-certificates", "ca-certificates.conf")
# Inside bubblewrap's new root these exist already; bind targets below them need no parent folders.
_PRESENT = ("/usr", "/etc", "/proc", "/dev", "/bin", "/lib", "/lib64", "/sbin", "/run/deskpilot")


def _overflow_id(kind: str) -> int:
    try:
        return int(Path(f"/proc/sys/kernel/overflow{kind}").read_text())
    except (OSError, ValueError):
        return 65534


def privileged() -> bool:
    """True when deskpilot runs as root: apps then get an unprivileged host uid of their own."""
    return os.geteuid() == 0


# The host uid/gid the apps run as when deskpilot is root: the kernel's overflow ids ("nobody"),
# which own nothing an app could reach (its HOME and /tmp are chowned to them).
APP_UID = _overflow_id("uid")
APP_GID = _overflow_id("gid")


def app_ids() -> tuple[int, int]:
    """(uid, gid) of the apps, as the sandbox's own files must be owned."""
    return (APP_UID, APP_GID) if privileged() else (os.geteuid(), os.getegid())


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


# The same reaper in Perl (perl-base is an essential Debian package): it starts in ~2 ms of CPU
# against ~10-12 ms for Python, and a desk starts three or more of them (window manager, apps,
# accessibility bus). The Python one is kept for systems without Perl.
PERL_REAPER = r"""
my $child = fork;
defined $child or die "deskpilot reaper: $!\n";
if ($child == 0) {
    exec { $ARGV[0] } @ARGV;
    print STDERR "cannot run '$ARGV[0]': $!\n";
    exit 127;
}
my $code = 0;
while ((my $pid = wait) != -1) {
    $code = ($? & 127) ? 128 + ($? & 127) : $? >> 8 if $pid == $child;
}
exit $code;
"""


def reaper_prefix() -> list[str]:
    """The command that runs an app as the sandbox's PID 1 reaper (empty: none available here)."""
    if os.access(_SYSTEM_PERL, os.X_OK):
        return [_SYSTEM_PERL, "-e", PERL_REAPER, "--"]
    if os.access(_SYSTEM_PYTHON, os.X_OK):
        return [_SYSTEM_PYTHON, "-c", REAPER]
    return []


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
    resolv_conf: Path | None = None  # the apps' /etc/resolv.conf in their own network namespace


def write_identity(folder: Path) -> Path:
    """passwd/group files naming the apps' user, so getpwuid() works inside."""
    uid, gid = (APP_UID, APP_GID) if privileged() else (INSIDE_UID, INSIDE_UID)
    folder.mkdir()
    folder.chmod(0o755)
    users = {0: "root:x:0:0:root:/root:/bin/sh", 65534: "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"}
    users[uid] = f"user:x:{uid}:{gid}:user:{INSIDE_HOME}:/bin/sh"
    groups = {0: "root:x:0:", 65534: "nogroup:x:65534:"}
    groups[gid] = f"user:x:{gid}:"
    (folder / "passwd").write_text("".join(line + "\n" for line in users.values()))
    (folder / "group").write_text("".join(line + "\n" for line in groups.values()))
    return folder


def _system_view(network: bool = False) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    # privileged bubblewrap creates missing folders 0700: every folder an app must enter is made 0755
    args += ["--perms", "0755", "--dir", "/etc", "--perms", "0755", "--dir", "/etc/default"]
    for name in ETC_FOR_APPS + (ETC_FOR_NETWORK if network else ()):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--perms", "0755", "--dir", "/var", "--perms", "0755", "--dir", "/var/cache"]
    return args + ["--ro-bind-try", "/var/cache/fontconfig", "/var/cache/fontconfig"]


def _parent_dirs(targets: Sequence[Path]) -> list[str]:
    """Create the folders above each bind target, traversable by the apps."""
    made: list[str] = []
    for target in targets:
        for parent in reversed(target.parents[:-1]):
            name = str(parent)
            if name not in made and not any(name == p or name.startswith(p + "/") for p in _PRESENT):
                made.append(name)
    return [arg for name in made for arg in ("--perms", "0755", "--dir", name)]


def _bind_args(binds: Sequence[Bind]) -> list[str]:
    args: list[str] = []
    for bind in sorted(binds, key=lambda b: len(b.inside.parts)):
        if not bind.host.exists():
            raise SandboxError(f"bind source does not exist: {bind.host}")
        args += ["--bind" if bind.writable else "--ro-bind", str(bind.host), str(bind.inside)]
    return args


def write_seccomp(path: Path) -> Path | None:
    """The apps' seccomp filter (no set-user/group-ID files, see seccomp.py), when deskpilot is root."""
    code = seccomp.program() if privileged() else None
    if code is None:
        return None
    path.write_bytes(code)
    return path


def bwrap_argv(
    layout: Layout, argv: Sequence[str], *, cwd: str | None, binds: Sequence[Bind], seccomp: Path | None = None
) -> list[str]:
    """bubblewrap command line for ``argv`` in this sandbox (behind the launcher when root).

    With ``seccomp``, the line holds ``SECCOMP_FD_PLACEHOLDER`` where the caller puts the
    number of an fd open on that file and passed to the child.
    """
    socket = f"/tmp/.X11-unix/X{layout.display}"
    every = (*layout.binds, *binds)
    root = privileged()
    args = [require("bwrap")]
    if root:  # privileged bubblewrap; setpriv below needs these three, then drops everything
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user", "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID)]
    args += ["--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not layout.network:
        args.append("--unshare-net")
    args += ["--die-with-parent", "--new-session", "--hostname", "deskpilot"]
    args += _system_view(layout.network)
    if layout.resolv_conf is not None:  # the host's may name its loopback resolver, out of the apps' reach
        args += ["--ro-bind", str(layout.resolv_conf), "/etc/resolv.conf"]
    args += ["--ro-bind", str(layout.identity / "passwd"), "/etc/passwd"]
    args += ["--ro-bind", str(layout.identity / "group"), "/etc/group"]
    # /dev/shm: bwrap's --dev leaves it root's 0755, so POSIX shared memory failed for the app's uid
    # (Debian 12's Chromium 150 aborts on it); a private tmpfs, writable by all like a real one
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
    args += ["--dir", "/run", "--perms", "0755", "--dir", "/run/deskpilot"]
    args += ["--bind", str(layout.tmp), "/tmp", "--perms", "0755", "--dir", "/home"]
    args += ["--bind", str(layout.home), str(INSIDE_HOME), "--perms", "0755", "--dir", "/tmp/.X11-unix"]
    args += ["--ro-bind", socket, socket, "--ro-bind", str(layout.xauthority), str(INSIDE_XAUTHORITY)]
    args += _parent_dirs([b.inside for b in every])
    args += _bind_args(every)
    args += ["--chdir", cwd or str(INSIDE_HOME)]
    if seccomp is not None:
        args += ["--seccomp", SECCOMP_FD_PLACEHOLDER]
    command = list(argv)
    if root:  # the drop happens in the app's own process: PID 1 keeps its parent-death signal
        command = [require("setpriv"), f"--reuid={APP_UID}", f"--regid={APP_GID}", "--clear-groups",
                   "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *command]  # fmt: skip
    if reaper := reaper_prefix():
        args += ["--as-pid-1", "--"]
        command = [*reaper, *command]
    else:
        args += ["--"]
    full = args + command
    if not root:
        return full
    # folders the apps' uid owns already (the window manager's HOME) need no mapping
    hosts = list(dict.fromkeys(str(b.host) for b in every if b.host.stat().st_uid != APP_UID))
    if not hosts:
        return full
    spec = {"uid": APP_UID, "gid": APP_GID, "binds": hosts, "argv": full}
    return [sys.executable, "-I", "-S", str(_LAUNCHER), json.dumps(spec)]


_APP_PATH = "/usr/local/bin:/usr/bin:/bin"


@functools.cache
def user_shell() -> str:
    """The shell terminals in the sandbox start (xterm reads ``$SHELL``).

    The user's own ``$SHELL`` when it is a system shell the sandbox can see
    (under /bin or /usr), else bash where installed, else /bin/sh. Without it
    xterm falls back to the passwd entry, which inside the sandbox is ``sh``:
    no history, no line editing, ``ctrl+l`` printed as ``^L``.
    """
    mine = os.environ.get("SHELL", "")
    if mine.startswith(("/bin/", "/usr/")) and os.access(mine, os.X_OK):
        return mine
    return shutil.which("bash", path=_APP_PATH) or "/bin/sh"


def app_env(layout: Layout, extra: dict[str, str] | None, *, isolated: bool) -> dict[str, str]:
    """The app's whole environment: nothing of the host's but locale (no API keys, no secrets)."""
    env = {key: os.environ[key] for key in _BASE_ENV_KEYS if key in os.environ}
    home, xauthority = (INSIDE_HOME, INSIDE_XAUTHORITY) if isolated else (layout.home, layout.xauthority)
    env.update(
        PATH=_APP_PATH, HOME=str(home), USER="user", LOGNAME="user", SHELL=user_shell(),
        TMPDIR="/tmp" if isolated else str(layout.tmp), DISPLAY=f":{layout.display}", XAUTHORITY=str(xauthority),
    )  # fmt: skip
    env.update(extra or {})
    return env


def bwrap_env(layout: Layout, extra: dict[str, str] | None) -> dict[str, str]:
    return app_env(layout, extra, isolated=True)


def plain_argv(argv: Sequence[str], binds: Sequence[Bind]) -> list[str]:
    """Command line for ``isolation="none"``: own PID namespace when possible."""
    for bind in binds:
        if bind.target is not None and bind.target != bind.host:
            raise SandboxError(f"isolation='none' cannot show {bind.host} at {bind.target}: use isolation='bwrap'")
    prefix = unshare_prefix()
    return [*prefix, *argv]


def plain_env(layout: Layout, extra: dict[str, str] | None) -> dict[str, str]:
    """An explicit environment with this sandbox's display, cookie, HOME and TMPDIR; not the host's."""
    return app_env(layout, extra, isolated=False)


@functools.cache
def bwrap_problem() -> str | None:
    """None if bubblewrap can build our kind of sandbox here, else why not (one line)."""
    try:
        bwrap = require("bwrap")
        setpriv = require("setpriv") if privileged() else None
    except SandboxError as exc:
        return str(exc)
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--die-with-parent"]
    if setpriv:
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        argv += ["--unshare-user"]
    argv += _system_view() + ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm",
                              "--as-pid-1", "--"]
    if setpriv:
        argv += [setpriv, f"--reuid={APP_UID}", f"--regid={APP_GID}", "--clear-groups", "--bounding-set=-all", "--"]
    argv += ["/usr/bin/true"]
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
    prefix: tuple[str, ...] = (unshare, "--pid", "--fork", "--kill-child")
    if os.geteuid() != 0:
        prefix = (unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child")
    try:
        done = subprocess.run([*prefix, "/usr/bin/true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if done.returncode == 0 else ()
