"""Handle of one app launched in a sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from deskpilot.sandbox.errors import SandboxError


class App:
    """A launched app: its launcher process, argv and log files.

    ``pid`` is the host PID of the launcher (bubblewrap or unshare in isolated
    modes); stopping it stops the app and everything the app started.
    """

    def __init__(self, proc: subprocess.Popen, argv: list[str], stdout_path: Path, stderr_path: Path) -> None:
        self._proc = proc
        self.pid: int = proc.pid
        self.argv = argv
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    def poll(self) -> int | None:
        """Exit code, or None while running."""
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the app to exit; SandboxError on timeout."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"app {self.argv[0]} still running after {timeout} s") from None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def terminate(self) -> None:
        """SIGTERM the launcher (in bwrap mode its namespace, app included, goes down with it)."""
        if self._proc.poll() is None:
            self._proc.terminate()

    def kill(self) -> None:
        """SIGKILL the launcher."""
        if self._proc.poll() is None:
            self._proc.kill()

    def __repr__(self) -> str:
        return f"App(pid={self.pid}, argv={self.argv!r}, returncode={self.returncode})"


def exit_signal(code: int) -> int | None:
    """The signal that ended a launcher, from its exit code (-N from Popen, 128+N passed on by bwrap's reaper)."""
    if code < 0:
        return -code
    if 128 < code < 128 + 65:
        return code - 128
    return None


def describe_exit(code: int) -> str:
    """'killed by SIGKILL', 'code 3', ..."""
    sig = exit_signal(code)
    if sig is None:
        return f"code {code}"
    try:
        return f"killed by {signal.Signals(sig).name}"
    except ValueError:
        return f"killed by signal {sig}"


def describe_tree(pid: int, limit: int = 3) -> str:
    """What the programs below a launcher are doing: the last ``limit`` (name, state, kernel wait, CPU s).

    An app that shows no window is either busy (CPU seconds grow: a font cache being built, a
    slow start on a loaded machine) or blocked (state S with a wait channel such as a socket
    read); this is the evidence that tells which.
    """
    found: list[str] = []
    todo, seen = [pid], set[int]()
    tick = os.sysconf("SC_CLK_TCK")
    while todo and len(seen) < 64:
        current = todo.pop(0)
        seen.add(current)
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            wchan = Path(f"/proc/{current}/wchan").read_text().strip() or "-"
            children = [int(c) for task in Path(f"/proc/{current}/task").iterdir()
                        for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        found.append(f"{name} {fields[0]} wait={wchan} cpu={cpu:.1f}s")
        todo.extend(c for c in children if c not in seen)
    return ", ".join(found[-limit:])
