"""Start Xvfb on a free display and learn its number through ``-displayfd``."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

from deskpilot.sandbox import spawn
from deskpilot.sandbox.errors import SandboxError
from deskpilot.sandbox.tools import require

START_TIMEOUT = 10.0


def start_xvfb(
    size: tuple[int, int], depth: int, xauthority: Path, log: Path, *, new_ipc: bool = False
) -> tuple[subprocess.Popen, int]:
    """Start Xvfb and return it with its display number once it accepts clients.

    Xvfb gets SIGTERM when the owner dies, so it removes its own socket.
    ``new_ipc``: in a SysV IPC namespace of its own, which the sandbox's apps join.
    """
    xvfb = require("Xvfb")
    width, height = size
    read_fd, write_fd = os.pipe()
    argv = [
        xvfb, "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x{depth}",
        "-nolisten", "tcp", "-auth", str(xauthority), "-extension", "GLX", "-noreset",
    ]  # fmt: skip
    try:
        with open(log, "wb") as err:
            proc = spawn.popen(
                argv, death_signal=signal.SIGTERM, new_ipc=new_ipc, pass_fds=[write_fd], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )  # fmt: skip
    finally:
        os.close(write_fd)
    try:
        number = _read_display(read_fd, proc, log)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        os.close(read_fd)
    return proc, number


def _read_display(fd: int, proc: subprocess.Popen, log: Path) -> int:
    """Read "N\\n" from the pipe; Xvfb may write it in pieces."""
    deadline = time.monotonic() + START_TIMEOUT
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise SandboxError(f"Xvfb did not start within {START_TIMEOUT:.0f} s (log: {log})")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                break
            data += chunk
    if not data.endswith(b"\n"):
        proc.wait(timeout=2)
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise SandboxError(f"Xvfb exited before it was ready: {' '.join(tail) or 'no output'}")
    return int(data)
