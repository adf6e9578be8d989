"""Real Xvfb + openbox + bubblewrap: startup, isolation, binds, teardown."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import shutil
import textwrap
import threading
import time
from pathlib import Path

import pytest

from deskpilot.sandbox import Bind, Sandbox, SandboxError
from deskpilot.sandbox import x11

PY = "/usr/bin/python3"


def _run(sb: Sandbox, code: str, *args: str, **kw) -> str:
    """Run a Python snippet in the sandbox; return its stdout (fails the test on error)."""
    app = sb.launch([PY, "-c", textwrap.dedent(code), *args], **kw)
    rc = app.wait(20)
    assert rc == 0, app.stderr_path.read_text()
    return app.stdout_path.read_text()


def _children(pid: int) -> set[int]:
    """All descendants of pid, by walking /proc."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            parents[int(name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    found, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return found - {pid}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return state[state.rfind(b")") + 2 : state.rfind(b")") + 3] != b"Z"


def _wait_gone(pids: set[int], paths: list[Path], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids) and not any(p.exists() for p in paths):
            return
        time.sleep(0.05)
    assert [p for p in pids if _alive(p)] == []
    assert [p for p in paths if p.exists()] == []


DAEMON = "setsid sleep 1000 & exec sleep 999"


def test_starts_display_with_wm_at_requested_size(sandbox: Sandbox) -> None:
    assert sandbox.display.startswith(":")
    assert sandbox.env == {"DISPLAY": sandbox.display, "XAUTHORITY": str(sandbox.xauthority)}
    assert Path(f"/tmp/.X11-unix/X{sandbox.display[1:]}").exists()
    conn = x11.connect(sandbox.display, sandbox.xauthority)
    try:
        screen = conn.screen()
        assert (screen.width_in_pixels, screen.height_in_pixels) == (1280, 800)
        assert x11.wm_running(conn)
    finally:
        conn.close()
    assert sandbox.wm is not None and sandbox.wm.poll() is None


def test_display_needs_the_cookie(sandbox: Sandbox, tmp_path: Path) -> None:
    """Without this sandbox's cookie a client is refused (no cross-sandbox access)."""
    wrong = tmp_path / "wrong"
    from deskpilot.sandbox.xauth import write_cookie

    write_cookie(wrong)
    with pytest.raises(Exception):
        x11.connect(sandbox.display, wrong).close()


def test_app_window_is_found_by_title(sandbox: Sandbox) -> None:
    app = sandbox.launch(["xterm", "-T", "deskpilot-probe", "-geometry", "40x10+10+10"])
    wid = sandbox.wait_for_window("deskpilot-probe")
    assert wid > 0 and app.poll() is None
    with pytest.raises(SandboxError, match="no window titled") as err:
        sandbox.wait_for_window("no-such-title", timeout=0.3)
    assert "deskpilot-probe" in err.value.titles and "(windows: " in str(err.value)  # what was there instead
    with pytest.raises(SandboxError):
        sandbox.wait_for_window("DESKPILOT-Probe", timeout=0.1)
    assert sandbox.wait_for_window("DESKPILOT-Probe", timeout=5, ignore_case=True) == wid


def test_root_changes_wakes_a_start_up_wait_at_the_change_and_leaves_the_connection_quiet(sandbox: Sandbox) -> None:
    """Start-up waits sleep until the root window changes (openbox's client list) instead of polling."""
    watching = x11.connect(sandbox.display, sandbox.xauthority)
    other = x11.connect(sandbox.display, sandbox.xauthority)
    try:
        with x11.root_changes(watching) as changed:
            for _ in range(100):  # openbox may still be setting root properties: until a wait sees none
                started = time.monotonic()
                changed(0.2)
                if time.monotonic() - started >= 0.19:
                    break
            else:
                pytest.fail("the root window kept changing for 20 s, or the wait never waited")
            timer = threading.Timer(0.3, lambda: (x11.set_root_string(other, "DESKPILOT_PROBE", "1"), other.sync()))
            timer.start()
            started = time.monotonic()
            changed(30)  # woken by the change, not by the 30 s timeout
            assert time.monotonic() - started < 20
            timer.join()
        x11.set_root_string(other, "DESKPILOT_PROBE", "2")
        other.sync()
        watching.sync()
        assert watching.pending_events() == 0, "the mask is cleared at the end: a shared connection queues nothing"
    finally:
        watching.close()
        other.close()


def test_diagnose_counts_app_windows_not_the_wm_s_own() -> None:
    with Sandbox(size=(640, 480)) as sb:
        assert sb.diagnose() == "X server and window manager running; 0 mapped top-level windows, 0 managed"
        sb.launch(["xterm", "-T", "diag", "-geometry", "20x5+10+10"])
        sb.wait_for_window("diag")
        said = sb.diagnose()
        assert said.endswith("; 1 mapped top-level windows, 1 managed"), said
        # what the app's processes are doing: the evidence for "busy" or "blocked" when no window comes
        assert re.search(r"; xterm: running \(.*\bxterm [RS] wait=\S+ cpu=\d+\.\ds[,)]", said), said


def test_app_has_private_home_and_tmp(sandbox: Sandbox) -> None:
    out = _run(
        sandbox,
        """
        import json, os, sys
        open(os.path.expanduser("~/in-home.txt"), "w").write("h")
        open("/tmp/in-tmp.txt", "w").write("t")
        print(json.dumps({"home": os.environ["HOME"], "real_home_visible": os.path.exists(sys.argv[1]) and sys.argv[1] != os.environ["HOME"],
                          "display": os.environ["DISPLAY"], "pid": os.getpid()}))
        """,
        str(Path.home()),
    )
    seen = json.loads(out)
    assert seen["home"] != str(Path.home())
    assert not seen["real_home_visible"]
    assert seen["display"] == sandbox.display
    assert seen["pid"] < 10  # its own PID namespace
    assert (sandbox.home / "in-home.txt").read_text() == "h"
    assert (sandbox.tmp / "in-tmp.txt").read_text() == "t"
    assert not Path("/tmp/in-tmp.txt").exists()


CONNECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    print("connected")
except OSError as exc:
    print("refused", exc)
"""


@pytest.fixture
def tcp_server():
    """A real TCP server on the host's loopback; yields (port, accepted-connections list)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, addr = server.accept()
            except OSError:
                return
            accepted.append(addr[0])
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def test_app_cannot_reach_host_loopback(sandbox: Sandbox, tcp_server) -> None:
    port, accepted = tcp_server
    assert _run(sandbox, CONNECT, str(port)).startswith("refused")
    assert accepted == []


def test_network_true_does_not_reach_host_loopback_as_root(tcp_server) -> None:
    """As root the apps get their own network namespace (slirp4netns): the host's loopback is out of reach.

    As an ordinary user they still share the host's (README, "What --network allows").
    """
    port, accepted = tcp_server
    with Sandbox((640, 480), network=True, window_manager=False) as sb:
        said = _run(sb, CONNECT, str(port))
    if os.geteuid() == 0:
        assert said.startswith("refused") and accepted == []
    else:
        assert said.startswith("connected") and accepted == ["127.0.0.1"]


WRITE = """
import sys
try:
    open(sys.argv[1], "w").write("from the app")
    print("written")
except OSError as exc:
    print("denied", exc.errno)
"""


def test_binds_writable_and_read_only(tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given.txt").write_text("from the host")
    binds = [Bind(host=rw, target=Path("/data/rw"), writable=True), Bind(host=ro)]
    with Sandbox((640, 480), binds=binds, window_manager=False) as sb:
        assert _run(sb, WRITE, "/data/rw/out.txt") == "written\n"
        assert _run(sb, WRITE, str(ro / "new.txt")).startswith("denied")
        assert _run(sb, "import sys; print(open(sys.argv[1]).read())", str(ro / "given.txt")) == "from the host\n"
        extra = tmp_path / "extra"
        extra.mkdir()
        out = _run(sb, WRITE, "/mnt/x/f.txt", binds=[Bind(host=extra, target=Path("/mnt/x"), writable=True)])
        assert out == "written\n"
    assert (rw / "out.txt").read_text() == "from the app"
    assert not (ro / "new.txt").exists()
    assert (extra / "f.txt").read_text() == "from the app"


def test_close_leaves_nothing_behind() -> None:
    sb = Sandbox((640, 480))
    app = sb.launch(["/bin/sh", "-c", DAEMON])
    xterm = sb.launch(["xterm", "-T", "teardown-probe"])
    sb.wait_for_window("teardown-probe")
    time.sleep(0.2)
    tree = _children(app.pid)
    sessions = {os.getsid(p) for p in tree if _alive(p)}
    assert len(tree) >= 3 and len(sessions) >= 2  # bwrap init, sleep, and the setsid daemon
    pids = {sb.xvfb_pid, sb.wm.pid, app.pid, xterm.pid} | tree | _children(xterm.pid) | _children(sb.wm.pid)
    number = sb.display[1:]
    paths = [Path(f"/tmp/.X11-unix/X{number}"), Path(f"/tmp/.X{number}-lock"), sb.dir]
    sb.close()
    sb.close()  # idempotent
    _wait_gone(pids, paths, timeout=3)
    with pytest.raises(SandboxError, match="closed"):
        sb.launch(["true"])


OWNER = """
import json, sys, time
from deskpilot.sandbox import Sandbox
sb = Sandbox((640, 480))
app = sb.launch(["/bin/sh", "-c", sys.argv[1]])
time.sleep(0.3)
print(json.dumps({"xvfb": sb.xvfb_pid, "wm": sb.wm.pid, "app": app.pid, "display": sb.display, "dir": str(sb.dir)}), flush=True)
time.sleep(60)
"""


def test_sigkill_of_owner_leaves_nothing_behind() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER, DAEMON], stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(owner.stdout.readline())
        pids = {info["xvfb"], info["wm"], info["app"]} | _children(info["app"]) | _children(info["wm"])
        assert len(pids) >= 7 and all(_alive(p) for p in pids)
        number = info["display"][1:]
        paths = [Path(f"/tmp/.X11-unix/X{number}"), Path(info["dir"])]
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    _wait_gone(pids, paths, timeout=5)
    deadline = time.monotonic() + 5  # the reaper deletes the folder, then exits: give it that moment
    while (left := _processes_mentioning(info["dir"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for p in left]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and text.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                found.append(int(name))
        except OSError:
            pass
    return [p for p in found if _alive(p)]


SHM = """
import ctypes
libc = ctypes.CDLL(None)
print(libc.shmget(0, 4096, 0o1000 | 0o600), flush=True)  # IPC_PRIVATE, IPC_CREAT, never removed
"""


@pytest.mark.skipif(os.geteuid() == 0, reason="as root the segments live in the sandbox's own IPC namespace (test_sandbox_seal)")
def test_close_removes_leftover_sysv_segments() -> None:
    with Sandbox((640, 480), window_manager=False) as sb:
        app = sb.launch([PY, "-c", SHM + "import time; time.sleep(60)"])
        deadline = time.monotonic() + 10
        while not app.stdout_path.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        shmid = int(app.stdout_path.read_text())
        assert shmid >= 0
        assert any(line.split()[1] == str(shmid) for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:])
    ids = {line.split()[1] for line in Path("/proc/sysvipc/shm").read_text().splitlines()[1:]}
    assert str(shmid) not in ids


def test_isolation_none_still_tears_down_daemons() -> None:
    sb = Sandbox((640, 480), isolation="none", window_manager=False)
    try:
        out = _run(sb, "import os; print(os.environ['HOME'])")
        assert out.strip() == str(sb.home)
        app = sb.launch(["/bin/sh", "-c", DAEMON])
        time.sleep(0.2)
        pids = {app.pid, sb.xvfb_pid} | _children(app.pid)
        assert len(pids) >= 3
    finally:
        sb.close()
    _wait_gone(pids, [sb.dir], timeout=3)


def test_two_sandboxes_get_different_displays() -> None:
    with Sandbox((640, 480), window_manager=False) as a, Sandbox((800, 600), window_manager=False) as b:
        assert a.display != b.display and a.dir != b.dir
        conn = x11.connect(b.display, b.xauthority)
        assert conn.screen().width_in_pixels == 800
        conn.close()


def test_missing_xvfb_names_the_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxError, match="apt-get install xvfb"):
        Sandbox()


def test_user_mistakes_are_one_line_errors(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="program not found"):
        sandbox.launch(["no-such-program-xyz"])
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.launch(["true"], binds=[Bind(host=tmp_path / "missing")])
    with pytest.raises(SandboxError, match="out of range"):
        Sandbox((10, 10))
    with pytest.raises(SandboxError, match="does not exist"):
        Sandbox(binds=[Bind(host=tmp_path / "missing")])
    with pytest.raises(SandboxError, match="isolation"):
        Sandbox(isolation="docker")  # type: ignore[arg-type]


def test_a_launcher_that_forks_and_exits_keeps_its_window(sandbox: Sandbox) -> None:
    # like xdg-open or many editors: start the real program in the background, exit at once
    app = sandbox.launch(["/bin/sh", "-c", "xterm -T forked-window & exit 3"])
    assert sandbox.wait_for_window("forked-window", timeout=15)
    time.sleep(0.5)
    assert app.poll() is None  # the xterm is still there, so the app's namespace is too
    assert sandbox.wait_for_window("forked-window", timeout=1)


def test_exit_code_of_a_missing_program_is_127(sandbox: Sandbox) -> None:
    app = sandbox.launch(["/usr/bin/no-such-program-here"])
    assert app.wait(10) == 127
    assert "no-such-program-here" in app.stderr_path.read_text()


def test_pid_1_is_the_perl_reaper_and_passes_on_how_the_app_ended(sandbox: Sandbox) -> None:
    """PID 1 in an app's namespace is the small Perl reaper (~2 ms of CPU to start, Python's ~10):
    it passes on the app's exit code, 128 + the signal of a killed app, and the app's own arguments
    (even ones that look like Perl's options)."""
    out = _run(sandbox, "print(open('/proc/1/cmdline', 'rb').read().split(b'\\0')[0].decode())")
    assert out.strip() == "/usr/bin/perl"
    assert sandbox.launch(["/bin/sh", "-c", "exit 5"]).wait(10) == 5
    assert sandbox.launch(["/bin/sh", "-c", "kill -TERM $$"]).wait(10) == 128 + 15
    echo = sandbox.launch(["/bin/echo", "-e", "--", "x"])
    assert echo.wait(10) == 0 and echo.stdout_path.read_text() == "-- x\n"


def test_terminals_start_the_users_shell_not_sh(sandbox: Sandbox) -> None:
    """xterm runs $SHELL: bash (where installed), so history, line editing and ctrl+l work."""
    assert shutil.which("bash")
    xterm = sandbox.launch(["xterm", "-T", "shell-probe", "-geometry", "40x10+10+10"])
    sandbox.wait_for_window("shell-probe")
    deadline = time.monotonic() + 10
    shells: set[str] = set()
    while time.monotonic() < deadline and not shells:
        for pid in _children(xterm.pid):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm in ("bash", "sh", "dash", "zsh"):
                shells.add(comm)
        time.sleep(0.05)
    assert shells and shells <= {"bash", "zsh"}, f"xterm started {shells or 'no shell'}"


def test_the_openbox_config_is_made_again_when_the_stock_file_changes(tmp_path: Path) -> None:
    from deskpilot.sandbox import wm

    stock = tmp_path / "rc.xml"
    stock.write_text('<openbox_config xmlns="http://openbox.org/3.4/rc"><keyboard><keybind key="A-F2">'
                     '<action name="Execute"><command>xterm</command></action></keybind></keyboard></openbox_config>')
    first = wm.safe_config(stock)
    assert "Execute" not in first and wm.safe_config(stock) is first  # made once
    stock.write_text('<openbox_config xmlns="http://openbox.org/3.4/rc"><desktops><number>3</number></desktops>'
                     '</openbox_config>')
    assert "<number>3</number>" in wm.safe_config(stock)  # a new version of the file is read again
