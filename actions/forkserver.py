"""Input workers forked from one pre-imported process instead of a fresh Python each.

Why: an input worker (``actions/_worker.py``) is a Python process that imports
pydantic, Xlib, our action models and pyautogui (numpy and OpenCV through
pyscreeze): ~0.35-0.45 s of CPU for every desktop, the costliest part of
starting one (bench/desk_cost.py). The fork server imports all of that ONCE
and forks a child per worker; the child sets DISPLAY/XAUTHORITY, imports the
two modules that bind to the display at import (``mouseinfo``, pyautogui's
X11 backend) and runs the same ``_worker.main`` on the pipes the owner handed
over. Nothing about the worker changes: same code, same protocol, same user
and environment as a worker started with ``python -m deskpilot.actions._worker``.

Lifetime: the server is started through ``sandbox.spawn`` (parent-death signal
SIGKILL, set on the long-lived spawner thread) in a session of its own; each
child gets SIGKILL when the server dies, and exits by itself at EOF on its
stdin when the owner closes it or dies. So a SIGKILLed owner leaves nothing:
owner -> server (death signal) -> children (death signal, and EOF). The price:
if the server itself crashed, every worker would go with it (each executor
then says its worker died, and the next action starts a new one); the server
does nothing but fork, and a worker started the old way had no death signal
at all (only the EOF). The owner
holds a pidfd for each child (opened by the server before it can reap it, so
a reused pid is never signalled).

Protocol (a SOCK_SEQPACKET socketpair): the server sends ``{"ready": true}``;
the owner sends ``{"env": {...}}`` with three fds (the child's stdin, stdout,
stderr); the server answers ``{"pid": N}`` with the child's pidfd.
Disable with DESKPILOT_INPUT_FORKSERVER=0 (fresh interpreters, as before).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import IO

READY_TIMEOUT_S = 30.0
_PR_SET_PDEATHSIG = 1


def enabled() -> bool:
    return os.environ.get("DESKPILOT_INPUT_FORKSERVER", "1") != "0"


class ForkedWorker:
    """The owner's handle on a forked worker: the part of ``subprocess.Popen`` the executor uses.

    The server is the child's parent, so its exit code is not ours to read:
    ``returncode`` is -1 once it has exited ("gone"), None while it runs.
    """

    def __init__(self, pid: int, pidfd: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.pid, self._pidfd, self.stdin, self.stdout = pid, pidfd, stdin, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self._pidfd >= 0 and select.select([self._pidfd], [], [], 0)[0]:
            self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._pidfd >= 0:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"input worker {self.pid}", timeout or 0)
            self.returncode = -1
        self._release()
        return -1

    def kill(self) -> None:
        if self.returncode is None and self._pidfd >= 0:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _release(self) -> None:
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    def __del__(self) -> None:
        self._release()


class ForkServer:
    """One per owner process, started on first use; forks input workers on request."""

    def __init__(self) -> None:
        from deskpilot.sandbox import spawn

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = spawn.popen(
                [sys.executable, "-m", "deskpilot.actions.forkserver", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        finally:
            theirs.close()
        self.sock = ours
        self.owner = os.getpid()
        ours.settimeout(READY_TIMEOUT_S)
        try:
            hello = json.loads(ours.recv(4096) or b"{}")
        except (OSError, ValueError):
            hello = {}
        if not hello.get("ready"):
            self.close()
            raise OSError("the input fork server did not start")
        ours.settimeout(None)

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def fork(self, env: dict[str, str | None], stderr: IO[bytes]) -> ForkedWorker:
        """A new worker with ``env`` applied (None removes a variable); its stderr goes to ``stderr``."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            socket.send_fds(self.sock, [json.dumps({"env": env}).encode()], [in_r, out_w, stderr.fileno()])
            self.sock.settimeout(READY_TIMEOUT_S)
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self.sock, 4096, 1)
            finally:
                self.sock.settimeout(None)
            if not msg or not fds:
                raise OSError("the input fork server stopped")
        except BaseException:
            os.close(in_w)
            os.close(out_r)
            raise
        finally:
            os.close(in_r)
            os.close(out_w)
        return ForkedWorker(int(json.loads(msg)["pid"]), fds[0], os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"))

    def close(self) -> None:
        self.sock.close()  # EOF: the server exits, and workers still running die with it (at exit only)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_server: ForkServer | None = None
_failed = 0  # pid of a process where the server could not start (it then stops trying)
_lock = threading.Lock()


@atexit.register
def _shutdown() -> None:
    """At a normal exit: stop the server and reap it (its CPU then counts as ours in rusage)."""
    server = _server
    if server is not None and server.owner == os.getpid():
        server.close()


def fork_worker(env: dict[str, str | None], stderr: IO[bytes]) -> ForkedWorker:
    """Fork a worker from this process's fork server (started, or restarted, as needed).

    OSError if there is no server to be had here: the caller starts a fresh
    interpreter instead (and, once a server failed to start, so do later calls).
    """
    global _server, _failed
    with _lock:
        if _failed == os.getpid():
            raise OSError("the input fork server could not start in this process")
        try:
            if _server is None or not _server.alive():
                _server = ForkServer()
            try:
                return _server.fork(env, stderr)
            except OSError:  # the server died between two requests: one fresh try
                _server = ForkServer()
                return _server.fork(env, stderr)
        except OSError:
            _failed = os.getpid()
            raise


# -- the server side -----------------------------------------------------------------------------

PRELOAD = (
    "Xlib.display", "Xlib.ext.xtest", "Xlib.support.unix_connect", "Xlib.xauth", "Xlib.XK",
    "pymsgbox", "pyperclip", "pytweening",
    "pyscreeze",  # numpy, OpenCV, PIL: most of pyautogui's import time
    "deskpilot.actions._worker",
)  # fmt: skip


def _preload() -> None:
    """Everything the worker imports that does not bind to a display at import time (best effort:
    a module missing here is simply imported, or found missing, by the child as before)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    import Xlib.ext

    for _name, module in Xlib.ext.__extensions__:  # imported by the first Display(): ~10 ms per child otherwise
        try:
            importlib.import_module(f"Xlib.ext.{module}")
        except ImportError:
            continue


def _reap(*_: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict, fds: list[int], sock: socket.socket, server: int) -> None:
    """In the forked child: become a worker on the owner's pipes. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != server:
            os._exit(1)
        sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for key, value in request["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # pyautogui imports mouseinfo (a GUI tool the worker never opens) only to offer mouseInfo();
        # it opens a display connection of its own at import: ~10 ms per child for nothing
        import types

        sys.modules.setdefault("mouseinfo", types.ModuleType("mouseinfo"))
        from deskpilot.actions import _worker

        code = _worker.main()
    except BaseException as exc:  # the owner reads the last stderr line
        try:
            os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
        except OSError:
            pass
    finally:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        os._exit(code)


def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    _preload()
    import gc

    gc.collect()
    gc.freeze()  # the preloaded objects stay shared with the children (no copy-on-write for the GC's sake)
    signal.signal(signal.SIGCHLD, _reap)
    me = os.getpid()
    sock.send(json.dumps({"ready": True}).encode())
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 3)
        except OSError:
            break
        if not msg:
            break  # the owner closed the socket or died
        try:
            request = json.loads(msg)
            if len(fds) != 3:
                raise ValueError("expected three fds")
        except ValueError:
            for fd in fds:
                os.close(fd)
            continue
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # no reaping before we hold its pidfd
        try:
            pid = os.fork()
            if pid == 0:
                _child(request, fds, sock, me)
            pidfd = os.pidfd_open(pid)  # the pid cannot have been reaped (and reused) yet
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        for fd in fds:
            os.close(fd)
        try:
            socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [pidfd])
        except OSError:
            break
        finally:
            os.close(pidfd)
    _reap()  # workers that already exited: their CPU goes into our rusage, and on to the owner's


if __name__ == "__main__":
    serve(int(sys.argv[1]))
