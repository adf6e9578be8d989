"""SandboxPool on real sandboxes: warm desks handed out fast, never reused, bounded, nothing leaked."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import deskpilot
from deskpilot.agent.desk.pool import SandboxPool

from deskpilot.errors import SandboxError

from conftest import kill_owner_after_report


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _wait_gone(pids, paths, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids) and not any(Path(p).exists() for p in paths):
            return
        time.sleep(0.1)
    raise AssertionError(f"left behind: pids {[p for p in pids if _alive(p)]}, "
                         f"paths {[p for p in paths if Path(p).exists()]}")


def _wait_idle(pool, n, timeout=30.0):
    deadline = time.monotonic() + timeout
    while pool.stats["idle"] < n:
        assert time.monotonic() < deadline, f"pool never warmed {n} desks: {pool.stats}"
        time.sleep(0.05)


def test_warm_desks_are_handed_out_fast_and_replaced_after_use(tmp_path):
    with SandboxPool(size=(640, 400), apps=["xterm"], warm=2, max=3) as pool:
        _wait_idle(pool, 2)
        t = time.perf_counter()
        desk = pool.acquire()
        handed_ms = (time.perf_counter() - t) * 1000
        assert handed_ms < 50, handed_ms
        assert desk.sandbox.wait_for_window("", timeout=1)  # the app's window is already up
        assert desk.capturer.grab().size == (640, 400)
        assert desk.executor.alive  # the input worker started with the desk
        assert isinstance(desk, deskpilot.Sandbox)  # the library's session, not a pool-only object
        first = desk.sandbox
        xvfb = first.xvfb_pid
        pool.release(desk)
        assert not _alive(xvfb) and not first.dir.exists()  # reset = replace: the used one is gone
        _wait_idle(pool, 2)
        assert pool.stats["started"] == 3
        seen = {id(first)}
        for _ in range(3):
            with pool.lease() as d:
                assert id(d.sandbox) not in seen
                seen.add(id(d.sandbox))


def test_pool_is_bounded(tmp_path):
    with SandboxPool(size=(320, 240), warm=0, max=2) as pool:
        a, b = pool.acquire(), pool.acquire()
        with pytest.raises(SandboxError, match="no desktop became free"):
            pool.acquire(timeout=0.3)
        pool.release(a)
        c = pool.acquire(timeout=10)
        assert c.sandbox is not a.sandbox
        assert pool.stats["leased"] == 2
        dirs = [b.sandbox.dir, c.sandbox.dir]
    assert not any(d.exists() for d in dirs)  # close() also closes desks still in use


def test_fresh_shares_keep_one_task_from_seeing_another(tmp_path):
    share = tmp_path / "data"
    share.mkdir()
    (share / "in.txt").write_text("original\n")
    with SandboxPool(size=(320, 240), apps=[], warm=1, max=2, shares=[share], fresh_shares=True) as pool:
        with pool.lease() as desk:
            app = desk.launch(["/bin/sh", "-c", f"echo changed > {share}/in.txt; echo new > {share}/out.txt"], wait=False)
            assert app.wait(10) == 0
            assert desk.host_path(share / "out.txt").read_text() == "new\n"
            assert desk.host_path(share / "in.txt").read_text() == "changed\n"
        with pool.lease() as desk:
            app = desk.launch(["/bin/cat", f"{share}/in.txt"], wait=False)
            assert app.wait(10) == 0
            assert Path(app.stdout_path).read_text() == "original\n"
            assert not desk.host_path(share / "out.txt").exists()
    assert (share / "in.txt").read_text() == "original\n" and not (share / "out.txt").exists()


def test_an_app_that_cannot_start_is_reported_not_retried_forever():
    with SandboxPool(size=(320, 240), apps=["/bin/false"], warm=1, max=2, ready_timeout=5) as pool:
        with pytest.raises(SandboxError, match="exited with code 1 before showing a window"):
            pool.acquire(timeout=20)


OWNER = """
import json, os, sys, time
from deskpilot.agent.desk.pool import SandboxPool
pool = SandboxPool(size=(320, 240), apps=["xterm"], warm=2, max=4)
leased = pool.acquire()
deadline = time.monotonic() + 30
while pool.stats["idle"] < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
desks = list(pool._desks.values())
from deskpilot.actions import forkserver
pids = [p for d in desks for p in [d.sandbox.xvfb_pid, d.sandbox.wm.pid, d.executor.pid] + [a.pid for a in d.apps]]
print(json.dumps({"pids": pids + [forkserver._server.proc.pid],
                  "dirs": [str(d.sandbox.dir) for d in desks], "displays": [d.sandbox.display for d in desks],
                  "inodes": [os.stat("/tmp/.X11-unix/X" + d.sandbox.display[1:]).st_ino for d in desks]}), flush=True)
time.sleep(60)
"""


def test_sigkill_of_the_owner_leaves_nothing_behind():
    info = kill_owner_after_report(OWNER)
    # Xvfb, openbox, input worker, xterm per desk, and the fork server of the input workers
    assert len(info["dirs"]) == 3 and len(info["pids"]) == 13
    _wait_gone(info["pids"], info["dirs"])
    # a display number may already serve a newer sandbox (other tests, other users): the old socket is
    # gone when the path is gone or is another file
    deadline = time.monotonic() + 15
    for display, inode in zip(info["displays"], info["inodes"]):
        path = Path(f"/tmp/.X11-unix/X{display[1:]}")
        while _inode(path) == inode:
            assert time.monotonic() < deadline, f"socket {path} of the killed owner's sandbox is left behind"
            time.sleep(0.1)


def test_a_desk_is_a_library_session_and_launching_in_it_stays_in_it(tmp_path):
    with SandboxPool(size=(640, 400), apps=["xterm -title first"], warm=1, max=2) as pool:
        with pool.lease() as desk:
            desk.launch("xterm -title second")  # waits for its window, as deskpilot.Sandbox.launch does
            assert desk.sandbox.wait_for_window("second", timeout=1)
            assert [a.argv[-1] for a in desk.spec.apps] == ["first", "second"]
            desk.click(5, 5)  # the library's computer-control methods work on a pool desk
            assert desk.screenshot().size == (640, 400)
        assert [a.argv[-1] for a in pool.spec.apps] == ["first"]  # the next desk starts what the pool says
        with pool.lease() as desk:
            assert len(desk.apps) == 1


class _BrokenWindowManager:
    """Fault injection: the first ``n`` sandboxes start `/bin/ls --sm-disable` as their window manager.

    A real program that really exits during startup with a message on stderr,
    as openbox did under load; every later sandbox gets the real openbox.
    Each Sandbox asks for "openbox" twice (a presence check, then the start):
    run builds one at a time (warm=0, one lease) so the count is exact.
    """

    def __init__(self, monkeypatch, n: int):
        import threading

        from deskpilot.sandbox import core

        self.calls, self.n, self._lock, real = 0, n, threading.Lock(), core.require

        def require(program: str) -> str:
            if program != "openbox":
                return real(program)
            with self._lock:
                self.calls += 1
                broken = self.calls <= 2 * self.n and self.calls % 2 == 0
            return "/bin/ls" if broken else real(program)

        monkeypatch.setattr(core, "require", require)


def test_a_desk_whose_window_manager_fails_to_start_is_retried_with_its_logs(monkeypatch):
    _BrokenWindowManager(monkeypatch, 2)
    with SandboxPool(size=(320, 240), apps=["xterm"], warm=0, max=1) as pool:
        with pool.lease(timeout=60) as desk:
            assert desk.sandbox.wm.poll() is None and "openbox" in desk.sandbox.wm.argv[0]
            failures = desk.start_failures
        assert pool.stats["start_failures"] == 2
    assert len(failures) == 2
    for failure in failures:
        assert str(failure).startswith("openbox exited during startup: /bin/ls: unrecognized option '--sm-disable'")
        assert any("unrecognized option" in text for name, text in failure.logs.items() if name.endswith("ls.err"))
        assert "xvfb.log" in failure.logs


def test_a_desk_that_never_starts_gives_up_after_the_retries(monkeypatch):
    from deskpilot.errors import DeskStartError

    _BrokenWindowManager(monkeypatch, 100)
    with SandboxPool(size=(320, 240), warm=0, max=1, start_retries=1) as pool:
        with pytest.raises(DeskStartError, match="openbox exited during startup") as info:
            pool.acquire(timeout=60)
        assert pool.stats["start_failures"] == 2 and len(info.value.failures) == 2
