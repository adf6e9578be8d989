"""sandbox.spawn: children die with their owner and land in the IPC namespace asked for.

Both ways are run: through util-linux's setpriv/unshare/nsenter (the normal
path, which lets subprocess use vfork) and through our own _enter.py, the fallback
where those programs are missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future

import pytest

from deskpilot.sandbox import spawn
from deskpilot.sandbox.errors import SandboxError

WAYS = ["tools", "script"]


@pytest.fixture(params=WAYS)
def way(request, monkeypatch):
    if request.param == "script":
        monkeypatch.setattr(spawn, "_tool", lambda name: None)
    return request.param


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("way_name", WAYS)
def test_child_dies_when_its_owner_is_killed(way_name):
    owner = textwrap.dedent(f"""
        import sys, time
        from deskpilot.sandbox import spawn
        if {way_name!r} == "script":
            spawn._tool = lambda name: None
        child = spawn.popen(["sleep", "60"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(proc.stdout.readline())
        time.sleep(0.2)  # the exec chain has run: the child is sleep itself now
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0].endswith(b"sleep")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _gone(pid, 3), f"sleep {pid} outlived its killed owner"
    finally:
        proc.kill()
        proc.wait()


def test_no_death_signal_means_the_child_outlives_its_owner():
    owner = textwrap.dedent("""
        import time
        from deskpilot.sandbox import spawn
        child = spawn.popen(["sleep", "30"], death_signal=None, start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    try:
        proc.kill()
        proc.wait()
        assert not _gone(pid, 0.5)
    finally:
        os.kill(pid, signal.SIGKILL)


def test_the_death_signal_is_the_one_asked_for(way, tmp_path):
    """Xvfb gets SIGTERM (so it removes its socket): a trap in the child sees which signal came."""
    out = tmp_path / "signal"
    owner = textwrap.dedent(f"""
        import time
        from deskpilot.sandbox import spawn
        if {way!r} == "script":
            spawn._tool = lambda name: None
        import signal
        child = spawn.popen(["sh", "-c", "trap 'echo TERM > {out}; exit 0' TERM; echo up; while :; do sleep 0.05; done"],
                            death_signal=signal.SIGTERM, stdout=None)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 3
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert out.read_text().strip() == "TERM"
    finally:
        proc.kill()


def _ipc_ns(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/ipc").st_ino


@pytest.mark.skipif(os.geteuid() != 0, reason="IPC namespaces need root here")
def test_new_ipc_namespace_and_joining_it(way):
    first = spawn.popen(["sleep", "30"], new_ipc=True)
    try:
        time.sleep(0.2)
        assert _ipc_ns(first.pid) != _ipc_ns("self")
        fd = os.open(f"/proc/{first.pid}/ns/ipc", os.O_RDONLY | os.O_CLOEXEC)
        try:
            second = spawn.popen(["sleep", "30"], ipc_fd=fd)
            time.sleep(0.2)
            assert _ipc_ns(second.pid) == _ipc_ns(first.pid)
            # the namespace fd is ours, not handed down to the app
            assert all(
                os.readlink(f"/proc/{second.pid}/fd/{n}") != os.readlink(f"/proc/self/fd/{fd}")
                for n in os.listdir(f"/proc/{second.pid}/fd")
            )
            second.kill()
            second.wait()
        finally:
            os.close(fd)
    finally:
        first.kill()
        first.wait()


def test_a_missing_program_is_file_not_found(way):
    with pytest.raises(FileNotFoundError):
        spawn.popen(["deskpilot-no-such-program-here"])
    with pytest.raises(FileNotFoundError):
        spawn.popen(["/nonexistent/bin/tool"], env={"PATH": "/usr/bin"})


def test_a_relative_program_is_found_from_the_child_s_folder(way, tmp_path):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "hello"
    tool.write_text("#!/bin/sh\necho hello-from-$(basename $(pwd))\n")
    tool.chmod(0o755)
    child = spawn.popen(["./bin/hello"], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert child.communicate(timeout=10)[0].strip() == f"hello-from-{tmp_path.name}"
    with pytest.raises(FileNotFoundError):
        spawn.popen(["./bin/hello"], cwd=tmp_path / "bin")


@pytest.mark.parametrize("way_name", WAYS)
def test_a_lock_held_at_the_fork_by_another_thread_cannot_hang_the_start(way_name):
    """No Python runs in a fork of the owner: a preexec_fn there waited forever on such a lock (CI hung)."""
    owner = textwrap.dedent(f"""
        import os, threading
        from deskpilot.sandbox import spawn
        if {way_name!r} == "script":
            spawn._tool = lambda name: None
        held = threading.Lock()
        held.acquire()  # as if another thread were inside it at the fork
        os.register_at_fork(after_in_child=held.acquire)  # what a library's fork handler may do
        child = spawn.popen(["sh", "-c", "echo started"], new_ipc=os.geteuid() == 0, stdout=None)
        child.wait()
    """)
    out = subprocess.run([sys.executable, "-c", owner], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, "started"), out.stderr


def test_the_fallback_says_why_a_namespace_cannot_be_joined(monkeypatch):
    monkeypatch.setattr(spawn, "_tool", lambda name: None)
    r, w = os.pipe()  # not a namespace file
    try:
        child = spawn.popen(["true"], ipc_fd=r, stderr=subprocess.PIPE, text=True)
        err = child.communicate(timeout=30)[1]
    finally:
        os.close(r)
        os.close(w)
    assert child.returncode == 125
    assert err.startswith("deskpilot: cannot join the IPC namespace:"), err


def test_a_start_that_never_returns_fails_the_starts_behind_it_with_its_name(monkeypatch):
    """One stuck start holds the spawner: the others fail fast, saying which, instead of hanging."""
    monkeypatch.setattr(spawn, "STUCK_S", 0.5)
    release = threading.Event()
    spawn._ensure_thread()
    spawn._queue.put((lambda: release.wait(30), Future(), "stuck-tool"))  # as a Popen that does not return
    try:
        started = time.monotonic()
        with pytest.raises(SandboxError, match=r"cannot start true: starting stuck-tool has not returned in \d+ s"):
            spawn.popen(["true"])
        assert time.monotonic() - started < 10
    finally:
        release.set()
    child = spawn.popen(["true"])  # unstuck, the spawner goes on
    assert child.wait(timeout=30) == 0
