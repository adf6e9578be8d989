"""Start child processes from one long-lived thread, with a parent-death signal.

``PR_SET_PDEATHSIG`` (and bubblewrap's ``--die-with-parent``, built on it)
fires when the *thread* that forked the child exits, not the process. A
sandbox created from a short-lived worker thread would lose its Xvfb when that
thread ends. So every fork happens on one daemon thread that lives exactly as
long as the process: the signal then means "the owner process died".

The same start-up can also put the child into a new SysV IPC namespace (the
sandbox's Xvfb) or into an existing one (its apps), so that MIT-SHM works
between them and no host segment is reachable.

Why through util-linux's small programs (``setpriv --pdeathsig``, ``unshare
--ipc``, ``nsenter --ipc``) rather than a Python ``preexec_fn``: any
``preexec_fn`` makes ``subprocess`` fork() the whole owner process, page tables
and all (an eval driving 32 desks is ~300 MB; every write it makes after the
fork then faults), where without one it uses vfork(). Two tiny execs cost less
than that fork. Where those programs are missing, our own ``_enter.py`` does the
same in a fresh interpreter. (A ``preexec_fn`` also runs Python in a fork of a
many-threaded process, where a lock held by another thread at the fork is held
forever: a CI run hung so.)
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from queue import SimpleQueue
from typing import Any, Callable

from deskpilot.sandbox.errors import SandboxError

_ENTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_enter.py")
STUCK_S = 60.0  # a start takes milliseconds; one this long will not return, and all others wait behind it
_queue: SimpleQueue[tuple[Callable[[], Any], Future, str]] = SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_busy: tuple[float, str] | None = None  # when the start under way began, and its program


def _serve() -> None:
    global _busy
    while True:
        job, future, program = _queue.get()
        _busy = (time.monotonic(), program)
        try:
            future.set_result(job())
        except BaseException as exc:  # handed back to the caller
            future.set_exception(exc)
        finally:
            _busy = None


def _result(future: Future, program: str) -> subprocess.Popen:
    """The started child; SandboxError, naming the culprit, once the spawner is stuck on a start."""
    while True:
        try:
            return future.result(timeout=1.0)
        except FutureTimeout:
            busy = _busy
            if busy is not None and time.monotonic() - busy[0] > STUCK_S:
                raise SandboxError(f"cannot start {program}: starting {busy[1]} has not returned in "
                                   f"{time.monotonic() - busy[0]:.0f} s, and every start waits for it") from None


def _ensure_thread() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_serve, name="deskpilot-spawner", daemon=True)
            _thread.start()


@functools.lru_cache(maxsize=None)
def _tool(name: str) -> str | None:
    return shutil.which(name)


def _prefix(sig: int | None, new_ipc: bool, ipc_fd: int | None, net_fd: int | None = None) -> list[str]:
    """The util-linux programs that set all this up before exec'ing argv (our script if one is missing)."""
    wanted: list[tuple[str, str]] = []
    if sig is not None:
        wanted.append(("setpriv", f"--pdeathsig={signal.Signals(sig).name}"))
    if new_ipc:
        wanted.append(("unshare", "--ipc"))
    if ipc_fd is not None:  # our own fd, so the app does not inherit it
        wanted.append(("nsenter", f"--ipc=/proc/{os.getpid()}/fd/{ipc_fd}"))
    if net_fd is not None:
        wanted.append(("nsenter", f"--net=/proc/{os.getpid()}/fd/{net_fd}"))
    prefix: list[str] = []
    for name, arg in wanted:
        tool = _tool(name)
        if tool is None:
            return _fallback(sig, new_ipc, ipc_fd, net_fd)
        prefix += [tool, arg]
    return prefix


def _fallback(sig: int | None, new_ipc: bool, ipc_fd: int | None, net_fd: int | None) -> list[str]:
    """The same through our own small script, for a machine without util-linux's programs."""
    unset = "-"
    return [sys.executable, "-I", "-S", _ENTER, str(os.getpid()), unset if sig is None else str(int(sig)),
            "1" if new_ipc else "0", unset if ipc_fd is None else str(ipc_fd),
            unset if net_fd is None else str(net_fd), "--"]


def _check_program(program: str, env: dict[str, str] | None, cwd: str | os.PathLike | None) -> None:
    """FileNotFoundError for a missing program, as Popen itself would raise without a prefix."""
    path = os.environ.get("PATH") if env is None else env.get("PATH", os.defpath)
    found = shutil.which(program, path=path) if os.sep not in program else os.path.join(cwd or ".", program)
    if found is None or not os.access(found, os.X_OK):
        raise FileNotFoundError(2, "No such file or directory", program)


def popen(
    argv: list[str],
    *,
    death_signal: int | None = signal.SIGKILL,
    new_ipc: bool = False,
    ipc_fd: int | None = None,
    net_fd: int | None = None,
    **kwargs: Any,
) -> subprocess.Popen:
    """``subprocess.Popen`` on the spawner thread; the child gets ``death_signal`` if we die.

    ``new_ipc``: the child gets a new IPC namespace; ``ipc_fd``: it joins that one (root only);
    ``net_fd``: it joins that network namespace (root only).
    Either failing makes the child exit non-zero before it runs anything (the reason on its stderr).
    """
    program = os.path.basename(str(argv[0]))
    if death_signal is not None or new_ipc or ipc_fd is not None or net_fd is not None:
        _check_program(argv[0], kwargs.get("env"), kwargs.get("cwd"))
        argv = _prefix(death_signal, new_ipc, ipc_fd, net_fd) + list(argv)
    _ensure_thread()
    future: Future = Future()
    _queue.put((lambda: subprocess.Popen(argv, **kwargs), future, program))
    return _result(future, program)
