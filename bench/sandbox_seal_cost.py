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


def _grab_ms(grab, n: int) -> float:
    grab()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        grab()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def capture(n: int) -> dict[str, float]:
    out = {}
    with Sandbox(SIZE, window_manager=False) as sb, Capturer(sb) as cap:
        out["sandbox (own IPC namespace), MIT-SHM"] = _grab_ms(cap.grab, n)
        with authority(sb.xauthority), mss.MSS(display=sb.display, backend="xgetimage") as plain:
            monitor = plain.monitors[0]
            out["sandbox, XGetImage (no MIT-SHM)"] = _grab_ms(lambda: plain.grab(monitor), n)
    with tempfile.TemporaryDirectory() as tmp:
        cookie = Path(tmp) / "Xauthority"
        write_cookie(cookie)
        xvfb, number = start_xvfb(SIZE, 24, cookie, Path(tmp) / "xvfb.log", new_ipc=False)
        try:
            with Capturer(f":{number}", cookie) as cap:
                out["baseline: bare Xvfb in the host IPC namespace, MIT-SHM"] = _grab_ms(cap.grab, n)
        finally:
            xvfb.terminate()
            xvfb.wait()
    return out


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
    launches = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    for title, figures in (("capture 1920x1080, ms per grab", capture(grabs)),
                           ("xterm launch to managed window, ms", launch(launches))):  # fmt: skip
        print(title)
        for name, ms in figures.items():
            print(f"  {name:58s} {ms:8.1f}")


if __name__ == "__main__":
    main()
