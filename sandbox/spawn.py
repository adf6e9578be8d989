"""Start child processes from one long-lived thread, with a parent-death signal.

``PR_SET_PDEATHSIG`` (and bubblewrap's ``--die-with-parent``, built on it)
fires when the *thread* that forked the child exits, not the process. A
sandbox created from a short-lived worker thread would lose its Xvfb when that
thread ends. So every fork happens on one daemon thread that lives exactly as
long as the process: the signal then means "the owner process died".
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_queue: SimpleQueue[tuple[Callable[[], Any], Future]] = SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _serve() -> None:
    while True:
        job, future = _queue.get()
        try:
            future.set_result(job())
        except BaseException as exc:  # handed back to the caller
            future.set_exception(exc)


def _ensure_thread() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_serve, name="deskpilot-spawner", daemon=True)
            _thread.start()


def _death_signal(sig: int) -> Callable[[], None]:
    parent = os.getpid()

    def preexec() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the owner died before prctl took effect
            os._exit(1)

    return preexec


def popen(argv: list[str], *, death_signal: int | None = signal.SIGKILL, **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` on the spawner thread; the child gets ``death_signal`` if we die."""
    if death_signal is not None:
        kwargs["preexec_fn"] = _death_signal(death_signal)
    _ensure_thread()
    future: Future = Future()
    _queue.put((lambda: subprocess.Popen(argv, **kwargs), future))
    return future.result()
