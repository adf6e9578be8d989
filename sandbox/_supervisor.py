"""Reaper for one sandbox; runs as its own small process (stdlib only).

Why a separate process: if the owning Python process is SIGKILLed nothing in
it runs, yet Xvfb, openbox, the apps and the sandbox's temp dir must go away.
The owner starts this reaper with a pipe on its stdin and writes one line per
process it starts (``xvfb PID DISPLAY`` or ``pid PID``). The reaper takes a
pidfd for each (so a reused PID is never hit) and blocks on the pipe. EOF on
the pipe means the owner closed the sandbox or died: the reaper then kills the
process trees (bubblewrap's PID namespaces take daemonized children with
them), stops Xvfb with SIGTERM so it removes its own socket, removes what a
SIGKILLed Xvfb would leave, deletes SysV shared-memory segments created by
the sandbox's processes, and removes the sandbox directory. A normal
``Sandbox.close()`` uses the same path, so both are tested by the same code.

Run as: python -I supervisor.py SANDBOX_DIR
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import sys
import time

_IPC_RMID = 0


class Tracked:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except OSError:
            self.fd = None  # already gone

    def signal(self, sig: int) -> None:
        if self.fd is not None:
            try:
                signal.pidfd_send_signal(self.fd, sig)
            except OSError:
                pass

    def wait(self, timeout: float) -> bool:
        """True once the process has exited (a zombie counts as exited)."""
        if self.fd is None:
            return True
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    table: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        table[int(name)] = int(fields[1])
    return table


def _descendants(roots: list[int]) -> set[int]:
    table = _parents()
    found = {pid for pid in roots if pid in table}
    grew = True
    while grew:
        grew = False
        for pid, parent in table.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _remove_segments(creators: set[int]) -> None:
    """Delete unattached SysV shm segments whose creator was one of ours."""
    try:
        with open("/proc/sysvipc/shm") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for row in rows:
        cols = row.split()
        shmid, cpid, nattch = int(cols[1]), int(cols[4]), int(cols[6])
        if cpid in creators and nattch == 0:
            libc.shmctl(shmid, _IPC_RMID, None)


def _remove_socket(display: int, inode: int | None) -> None:
    path = f"/tmp/.X11-unix/X{display}"
    try:
        if inode is not None and os.lstat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


def teardown(root: str, xvfb: Tracked | None, display: int | None, inode: int | None, apps: list[Tracked]) -> None:
    tree = _descendants([a.pid for a in apps])
    others = [Tracked(pid) for pid in tree - {a.pid for a in apps}]
    # Inside out: kill what the launchers started first and give each launcher (bubblewrap,
    # unshare) a moment to notice and exit by itself. A launcher killed first would orphan its
    # children, and their zombies would wait for PID 1 to reap them (forever, under an init
    # that does not reap). The owner reaps the launchers themselves.
    for proc in others:
        proc.signal(signal.SIGKILL)
    deadline = time.monotonic() + 3.0
    for proc in others:
        proc.wait(max(0.0, deadline - time.monotonic()))
    grace = time.monotonic() + 1.0
    for proc in apps:
        proc.wait(max(0.0, grace - time.monotonic()))
        proc.signal(signal.SIGKILL)
    if xvfb is not None:
        xvfb.signal(signal.SIGTERM)
        if not xvfb.wait(3.0):
            xvfb.signal(signal.SIGKILL)
            xvfb.wait(2.0)
            if display is not None:
                _remove_socket(display, inode)
                _remove_lock(display, xvfb.pid)
        tree.add(xvfb.pid)
    deadline = time.monotonic() + 3.0
    for proc in apps:
        proc.wait(max(0.0, deadline - time.monotonic()))
    _remove_segments(tree)
    shutil.rmtree(root, ignore_errors=True)


def _remove_lock(display: int, pid: int) -> None:
    path = f"/tmp/.X{display}-lock"
    try:
        with open(path) as f:
            owner = int(f.read().strip() or 0)
        if owner == pid:
            os.unlink(path)
    except (OSError, ValueError):
        pass


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    root = sys.argv[1]
    xvfb: Tracked | None = None
    display: int | None = None
    inode: int | None = None
    apps: list[Tracked] = []
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["xvfb"] and len(words) == 3:
            xvfb, display = Tracked(int(words[1])), int(words[2])
            try:
                inode = os.lstat(f"/tmp/.X11-unix/X{display}").st_ino
            except OSError:
                inode = None
        elif words[:1] == ["pid"] and len(words) == 2:
            apps.append(Tracked(int(words[1])))
        sys.stdout.write("ok\n")
        sys.stdout.flush()
    teardown(root, xvfb, display, inode, apps)


if __name__ == "__main__":
    main()
