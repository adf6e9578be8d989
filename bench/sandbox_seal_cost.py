"""What sealing the sandbox costs: capture with Xvfb in its own IPC namespace, and app start.

Capture: ``perception.Capturer.grab()`` on a 1920x1080 sandbox (Xvfb in the
sandbox's own SysV IPC namespace, apps as an unprivileged uid), against the
baseline of a bare Xvfb started in the host's IPC namespace, and against
mss's plain XGetImage path (what capture would cost without MIT-SHM).
App start: ``launch(xterm)`` until its window is managed, with no host folder,
with one shared folder (which adds the idmapping launcher), and with
``isolation="none"``.

Usage: python bench/sandbox_seal_cost.py [GRABS] [LAUNCHES]. Prints medians in ms.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mss

from deskpilot.perception import Capturer
from deskpilot.sandbox import Bind, Sandbox
from deskpilot.sandbox.xauth import authority, write_cookie
from deskpilot.sandbox.xvfb import start_xvfb

SIZE = (1920, 1080)


def _interleaved_ms(grabs: dict[str, object], n: int) -> dict[str, float]:
    """Median ms per grab of each path, taking turns (in rotating order) so load changes hit all alike."""
    times: dict[str, list[float]] = {name: [] for name in grabs}
    order = list(grabs.items())
    for name, grab in order:
        grab()  # warm-up
    for i in range(n):
        for name, grab in order[i % len(order) :] + order[: i % len(order)]:
            start = time.perf_counter()
            grab()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def capture(n: int) -> dict[str, float]:
    # The baseline's Xvfb starts first: in trials the display started second grabbed ~40% slower
    # whichever kind it was (an artefact of this VM), which would flatter the sandbox.
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        cookie = Path(tmp) / "Xauthority"
        write_cookie(cookie)
        xvfb, number = start_xvfb(SIZE, 24, cookie, Path(tmp) / "xvfb.log", new_ipc=False)
        stack.callback(xvfb.wait)
        stack.callback(xvfb.terminate)
        base = stack.enter_context(Capturer(f":{number}", cookie))
        sb = stack.enter_context(Sandbox(SIZE, window_manager=False))
        cap = stack.enter_context(Capturer(sb))
        with authority(sb.xauthority):
            plain = stack.enter_context(mss.MSS(display=sb.display, backend="xgetimage"))
        monitor = plain.monitors[0]
        for which in (base, cap):  # both must really use MIT-SHM for the comparison to mean anything
            which.grab()
            status = which.mss._impl.shm_status.name  # type: ignore[attr-defined]
            assert status == "AVAILABLE", (which.display, status, which.mss._impl.performance_status)
        return _interleaved_ms({
            "baseline: bare Xvfb in the host IPC namespace, MIT-SHM": base.grab,
            "sandbox (own IPC namespace), MIT-SHM": cap.grab,
            "sandbox, XGetImage (no MIT-SHM)": lambda: plain.grab(monitor),
        }, n)  # fmt: skip


def launch(n: int) -> dict[str, float]:
    out = {}
    with tempfile.TemporaryDirectory() as share:
        cases = {
            "bwrap, no host folder": ("bwrap", []),
            "bwrap, one shared folder (idmapped)": ("bwrap", [Bind(host=Path(share), writable=True)]),
            "isolation=none": ("none", []),
        }
        for name, (mode, binds) in cases.items():
            times = []
            with Sandbox((1280, 800), isolation=mode) as sb:
                for i in range(n + 1):
                    start = time.perf_counter()
                    app = sb.launch(["xterm", "-T", f"bench-{i}"], binds=binds)
                    sb.wait_for_window(f"bench-{i}", timeout=20)
                    times.append((time.perf_counter() - start) * 1000)
                    app.kill()
                    app.wait(5)
            out[name] = statistics.median(times[1:])
    return out


def main() -> None:
    grabs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    launches = max(1, int(sys.argv[2])) if len(sys.argv) > 2 else 8
    for title, figures in (("capture 1920x1080, ms per grab", capture(grabs)),
                           ("xterm launch to managed window, ms", launch(launches))):  # fmt: skip
        print(title)
        for name, ms in figures.items():
            print(f"  {name:58s} {ms:8.1f}")


if __name__ == "__main__":
    main()
