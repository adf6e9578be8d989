"""What a sandboxed app must NOT reach when deskpilot runs as root, and what must still work.

Real Xvfb, bubblewrap and apps; the probes are small Python programs run inside
the sandbox with the system Python. The audit behind these (issue 15): as root
an app's uid 1000 mapped to host uid 0, so it read /etc/shadow and attached a
root-owned 0600 SysV segment.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from deskpilot.perception import Capturer
from deskpilot.sandbox import Bind, Sandbox, isolation

from conftest import wait_for_colour

PY = "/usr/bin/python3"
AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="the uid/IPC separation is what deskpilot does as root")


def _run(sb: Sandbox, code: str, *args: str, **kw) -> str:
    app = sb.launch([PY, "-c", textwrap.dedent(code), *args], **kw)
    rc = app.wait(20)
    assert rc == 0, app.stderr_path.read_text()
    return app.stdout_path.read_text()


READ = """
import json, os, sys
def on_host(uid):  # what the kernel sees: translate through this user namespace's map
    for line in open("/proc/self/uid_map"):
        inside, outside, count = map(int, line.split())
        if inside <= uid < inside + count:
            return outside + uid - inside
seen = {"host_uid": on_host(os.geteuid()), "groups": os.getgroups()}
seen.update(line.split(":\t") for line in open("/proc/self/status").read().splitlines() if line.startswith("Cap"))
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        seen[path] = "read"
    except OSError as exc:
        seen[path] = exc.__class__.__name__
print(json.dumps(seen))
"""


@needs_root
def test_app_cannot_read_root_only_files(tmp_path: Path) -> None:
    # a folder the user gives the app (owned by another user, as if shared from their home),
    # holding a file only root may read
    given = tmp_path / "given"
    given.mkdir()
    (given / "public.txt").write_text("for the app")
    secret = given / "root-only.txt"
    secret.write_text("root only")
    secret.chmod(0o600)
    os.chown(given, 4242, 4242)
    os.chown(given / "public.txt", 4242, 4242)
    paths = ["/etc/shadow", "/etc/gshadow", str(secret), str(given / "public.txt")]
    ssl_private = Path("/etc/ssl/private")  # root-only folder that exists on Debian, visible with --network
    if ssl_private.is_dir() and not (ssl_private.stat().st_mode & 0o005):
        paths.append(str(ssl_private))
    with Sandbox((320, 240), window_manager=False, network=True, binds=[Bind(host=given)]) as sb:
        seen = json.loads(_run(sb, READ, *paths))
    for path in paths:
        if path != str(given / "public.txt"):
            assert seen[path] in ("FileNotFoundError", "PermissionError"), (path, seen[path])
    assert seen["/etc/shadow"] == "FileNotFoundError"  # not even shown
    assert seen[str(secret)] == "PermissionError"
    assert seen[str(given / "public.txt")] == "read"
    assert seen["host_uid"] != 0
    assert seen["host_uid"] == isolation.APP_UID and seen["groups"] in ([], [isolation.APP_GID])
    assert int(seen["CapEff"], 16) == int(seen["CapPrm"], 16) == int(seen["CapBnd"], 16) == 0


def test_only_the_needed_parts_of_etc_are_shown() -> None:
    with Sandbox((320, 240), window_manager=False) as sb:
        inside = set(json.loads(_run(sb, "import json, os; print(json.dumps(os.listdir('/etc')))")))
    assert {"passwd", "group", "fonts", "ld.so.cache"} <= inside
    assert not inside & {"shadow", "gshadow", "ssh", "sudoers", "pip.conf", "npmrc", "environment", "resolv.conf", "ssl"}
    assert inside <= set(isolation.ETC_FOR_APPS) | {"passwd", "group", "default"}


SHM_ATTACH = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
addr = libc.shmat(int(sys.argv[1]), None, 0)
print("attached" if addr not in (None, ctypes.c_void_p(-1).value) else f"refused {ctypes.get_errno()}")
print(sys.argv[1] in open("/proc/sysvipc/shm").read().split())
"""


@needs_root
def test_app_cannot_attach_a_host_sysv_segment() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(0, 4096, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT, root-owned 0600
    assert shmid >= 0
    try:
        with Sandbox((320, 240), window_manager=False) as sb:
            out = _run(sb, SHM_ATTACH, str(shmid)).split()
        assert out[0] == "refused" and out[-1] == "False"
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


# An X client that draws with MIT-SHM the classic way (SysV segment + XShmPutImage), as
# GTK/Qt/cairo apps do: it must keep working with the X server in the sandbox's IPC namespace.
XSHM_APP = """
import ctypes, sys, time
from ctypes import c_int, c_uint, c_ulong, c_void_p, c_char_p, POINTER
X = ctypes.CDLL("libX11.so.6"); Xext = ctypes.CDLL("libXext.so.6"); libc = ctypes.CDLL(None, use_errno=True)
X.XOpenDisplay.restype = c_void_p; X.XOpenDisplay.argtypes = [c_char_p]
for f in ("XDefaultScreen", "XDefaultDepth"): getattr(X, f).restype = c_int
X.XDefaultDepth.argtypes = [c_void_p, c_int]; X.XDefaultScreen.argtypes = [c_void_p]
X.XDefaultVisual.restype = c_void_p; X.XDefaultVisual.argtypes = [c_void_p, c_int]
X.XRootWindow.restype = c_ulong; X.XRootWindow.argtypes = [c_void_p, c_int]
X.XCreateSimpleWindow.restype = c_ulong
X.XCreateSimpleWindow.argtypes = [c_void_p, c_ulong, c_int, c_int, c_uint, c_uint, c_uint, c_ulong, c_ulong]
X.XCreateGC.restype = c_void_p; X.XCreateGC.argtypes = [c_void_p, c_ulong, c_ulong, c_void_p]
X.XMapWindow.argtypes = [c_void_p, c_ulong]; X.XSync.argtypes = [c_void_p, c_int]
class Info(ctypes.Structure):
    _fields_ = [("shmseg", c_ulong), ("shmid", c_int), ("shmaddr", c_void_p), ("readOnly", c_int)]
Xext.XShmQueryExtension.argtypes = [c_void_p]
Xext.XShmCreateImage.restype = c_void_p
Xext.XShmCreateImage.argtypes = [c_void_p, c_void_p, c_uint, c_int, c_void_p, POINTER(Info), c_uint, c_uint]
Xext.XShmAttach.argtypes = [c_void_p, POINTER(Info)]
Xext.XShmPutImage.argtypes = [c_void_p, c_ulong, c_void_p, c_void_p, c_int, c_int, c_int, c_int, c_uint, c_uint, c_int]
libc.shmat.restype = c_void_p; libc.shmat.argtypes = [c_int, c_void_p, c_int]
errors = []
HANDLER = ctypes.CFUNCTYPE(c_int, c_void_p, c_void_p)(lambda d, e: errors.append(1) or 0)
X.XSetErrorHandler(HANDLER)
x, y, w, h = (int(v) for v in sys.argv[1:5])
dpy = X.XOpenDisplay(None); scr = X.XDefaultScreen(dpy)
assert Xext.XShmQueryExtension(dpy), "no MIT-SHM"
attrs = ctypes.create_string_buffer(120)  # XSetWindowAttributes; override_redirect is at offset 88
ctypes.c_int.from_buffer(attrs, 88).value = 1
X.XCreateWindow.restype = c_ulong
X.XCreateWindow.argtypes = [c_void_p, c_ulong, c_int, c_int, c_uint, c_uint, c_uint, c_int, c_uint, c_void_p, c_ulong, c_void_p]
win = X.XCreateWindow(dpy, X.XRootWindow(dpy, scr), x, y, w, h, 0, 0, 1, None, 1 << 9, attrs)  # CWOverrideRedirect
info = Info()
image = Xext.XShmCreateImage(dpy, X.XDefaultVisual(dpy, scr), X.XDefaultDepth(dpy, scr), 2, None, ctypes.byref(info), w, h)
info.shmid = libc.shmget(0, w * h * 4, 0o1000 | 0o600)
info.shmaddr = libc.shmat(info.shmid, None, 0)
ctypes.c_void_p.from_address(image + 16).value = info.shmaddr  # XImage.data
ctypes.memmove(info.shmaddr, bytes([0x30, 0xA0, 0xE0, 0]) * (w * h), w * h * 4)  # BGRX of (224, 160, 48)
Xext.XShmAttach(dpy, ctypes.byref(info)); X.XSync(dpy, 0)
print("attach", "failed" if errors else "ok", flush=True)
gc = X.XCreateGC(dpy, win, 0, None)
X.XMapWindow(dpy, win)
while True:
    Xext.XShmPutImage(dpy, win, gc, image, 0, 0, 0, 0, w, h, 0); X.XSync(dpy, 0)
    if errors:
        print("put failed", flush=True); break
    time.sleep(0.1)
"""


def test_apps_and_capture_still_use_mit_shm(sandbox: Sandbox) -> None:
    app = sandbox.launch([PY, "-c", XSHM_APP, "100", "120", "200", "100"])
    with Capturer(sandbox) as capturer:
        wait_for_colour(capturer, (200, 170), (224, 160, 48), timeout=15)
        assert app.stdout_path.read_text() == "attach ok\n"
        assert app.poll() is None
        capturer.grab()
        shm = getattr(capturer.mss._impl, "shm_status", None)
        assert shm is not None and shm.name == "AVAILABLE", capturer.mss._impl.performance_status


TK_SAVE = """
import sys, tkinter
root = tkinter.Tk()
root.title("saver")
def save():
    with open(sys.argv[1], "w") as f:
        f.write("saved by Tk")
    with open(sys.argv[2], "a") as f:
        f.write(" + edited by Tk")
    root.destroy()
root.after(300, save)
root.mainloop()
"""


def test_a_tk_app_saves_into_a_share_as_the_shares_owner(tmp_path: Path) -> None:
    share = tmp_path / "work"
    share.mkdir()
    (share / "existing.txt").write_text("from the host")
    with Sandbox((640, 480), binds=[Bind(host=share, writable=True)]) as sb:
        app = sb.launch([PY, "-c", TK_SAVE, str(share / "out.txt"), str(share / "existing.txt")])
        assert app.wait(20) == 0, app.stderr_path.read_text()
    out = share / "out.txt"
    assert out.read_text() == "saved by Tk"
    assert (share / "existing.txt").read_text() == "from the host + edited by Tk"
    assert (out.stat().st_uid, out.stat().st_gid) == (share.stat().st_uid, share.stat().st_gid)
    out.unlink()  # the host user can do what it likes with it


ENV = "import json, os; print(json.dumps(dict(os.environ)))"


@pytest.mark.parametrize("mode", ["none", "bwrap"])
def test_apps_get_a_clean_environment(mode: str, monkeypatch) -> None:
    monkeypatch.setenv("DESKPILOT_API_KEY", "sk-not-for-apps")
    monkeypatch.setenv("MY_SECRET", "hunter2")  # what --secret MY_SECRET would name
    with Sandbox((320, 240), isolation=mode, window_manager=False) as sb:
        env = json.loads(_run(sb, ENV, env={"GIVEN": "yes"}))
        assert env["DISPLAY"] == sb.display and env["GIVEN"] == "yes"
    assert "sk-not-for-apps" not in json.dumps(env) and "hunter2" not in json.dumps(env)
    from deskpilot.sandbox import a11ybus

    accessibility = set(a11ybus.app_env(Path("/run/deskpilot/a11y/bus")))  # the sandbox's own bus, bridges on
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "DISPLAY", "XAUTHORITY", "LANG", "LC_ALL", "TZ",
                        "GIVEN", "PWD", "SHLVL", "_", "LC_CTYPE", "SHELL"} | accessibility  # fmt: skip
    assert env["AT_SPI_BUS_ADDRESS"].endswith("/a11y/bus")


SEGMENT = """
import ctypes, os, time
libc = ctypes.CDLL(None)
print(libc.shmget(0x5EA1ED, 4096, 0o1000 | 0o600), os.readlink("/proc/self/ns/ipc"), flush=True)
time.sleep(60)
"""


@needs_root
def test_sysv_segments_live_and_die_with_the_sandbox() -> None:
    with Sandbox((320, 240), window_manager=False) as sb:
        app = sb.launch([PY, "-c", SEGMENT])
        deadline = time.monotonic() + 10
        while not app.stdout_path.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        shmid, namespace = app.stdout_path.read_text().split()
        assert int(shmid) >= 0
        assert namespace == os.readlink(f"/proc/{sb.xvfb_pid}/ns/ipc") != os.readlink("/proc/self/ns/ipc")
        host_keys = [row.split()[0] for row in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]]
        assert str(0x5EA1ED) not in host_keys  # not in the host's namespace
    holders = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{name}/ns/ipc") == namespace:
                holders.append(name)
        except OSError:
            pass
    assert holders == []  # nothing keeps the namespace (and so the segment) alive


LIFECYCLES = """
import ctypes, json, os, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of our children come to us
from deskpilot.sandbox import Sandbox

def children():
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{name}/stat", "rb").read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == os.getpid():
            found.append([int(name), fields[0].decode(), stat[stat.find(b"(") + 1 : stat.rfind(b")")].decode()])
    return found

for _ in range(int(sys.argv[2])):
    with Sandbox((320, 240), isolation=sys.argv[1]) as sb:
        sb.launch(["/bin/sh", "-c", "setsid sleep 100 & exec sleep 99"])
        sb.launch(["xterm", "-T", "lifecycle"])
        sb.wait_for_window("lifecycle", 15)
time.sleep(0.3)
print(json.dumps(children()))
"""


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_closed_sandboxes_leave_no_zombies_for_pid_1(mode: str) -> None:
    # As a child subreaper, the probe process inherits every orphan its sandboxes leave: those
    # would otherwise wait for PID 1 to reap them (for ever, under an init that does not reap).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LIFECYCLES, mode, "3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


SETUID = """
import json, os, shutil, sys
share, out = sys.argv[1], {}
shutil.copy("/bin/sh", share + "/sh")
for name, attempt in {
    "chmod 4755": lambda: os.chmod(share + "/sh", 0o4755),
    "chmod 2755": lambda: os.chmod(share + "/sh", 0o2755),
    "create 4755": lambda: os.close(os.open(share + "/made", os.O_CREAT | os.O_WRONLY, 0o4755)),
    "chmod 755": lambda: os.chmod(share + "/sh", 0o755),
}.items():
    try:
        attempt()
        out[name] = "done"
    except OSError as exc:
        out[name] = exc.errno
print(json.dumps(out))
"""


@needs_root
def test_an_app_cannot_leave_a_set_user_id_file_in_a_share(tmp_path: Path) -> None:
    # files an app writes in a share belong to the share's owner on the host (root here):
    # a set-user-ID copy of a shell there would be a root shell for every local user
    share = tmp_path / "share"
    share.mkdir()
    with Sandbox((320, 240), window_manager=False, binds=[Bind(host=share, writable=True)]) as sb:
        seen = json.loads(_run(sb, SETUID, str(share)))
    assert seen == {"chmod 4755": 1, "chmod 2755": 1, "create 4755": 1, "chmod 755": "done"}  # EPERM
    for path in share.iterdir():
        assert not path.stat().st_mode & 0o6000, path


IO_URING = """
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
out = {}
for name, call in {
    "setup": lambda: libc.syscall(425, 4, params),
    "enter": lambda: libc.syscall(426, -1, 0, 0, 0, None, 0),
    "register": lambda: libc.syscall(427, -1, 0, None, 0),
}.items():
    got = call()
    out[name] = "fd" if got >= 0 else ctypes.get_errno()
print(json.dumps(out))
"""


@needs_root
def test_an_app_cannot_use_io_uring(tmp_path: Path) -> None:
    # IORING_OP_OPENAT takes its mode from a shared ring the seccomp filter cannot read:
    # with io_uring an app made a set-user-ID root file in a share (issue 26)
    share = tmp_path / "share"
    share.mkdir()
    with Sandbox((320, 240), window_manager=False, binds=[Bind(host=share, writable=True)]) as sb:
        seen = json.loads(_run(sb, IO_URING))
    assert seen == {"setup": errno.ENOSYS, "enter": errno.ENOSYS, "register": errno.ENOSYS}


SHM = """
import os
from multiprocessing import shared_memory
block = shared_memory.SharedMemory(name="deskpilot-shm-probe", create=True, size=4096)  # what Chromium does
block.buf[:5] = b"hello"
print(oct(os.stat("/dev/shm").st_mode & 0o7777), os.listdir("/dev/shm"))
block.close()
block.unlink()
"""


def test_apps_get_a_private_writable_dev_shm() -> None:
    """POSIX shared memory works for the app's uid (bwrap's /dev leaves /dev/shm root's 0755: Debian 12's
    Chromium 150 aborted on it) and is the sandbox's own: nothing appears in the host's /dev/shm."""
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    with Sandbox((320, 240), window_manager=False) as sb:
        out = _run(sb, SHM)
        assert out.split()[0] == "0o1777" and "deskpilot-shm-probe" in out, out
        assert "deskpilot-shm-probe" not in (set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set())
    assert "deskpilot-shm-probe" not in before
