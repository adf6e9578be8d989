"""What an office app costs in a sandbox: start-up time and memory, against xterm in the same run.

    python bench/office_startup.py [--runs 3]

For each app: seconds from asking for the desktop until the app's window is
mapped, until its content is drawn and still (the screen unchanged for 1 s,
that second not counted), and the resident memory of everything the app runs
(its processes inside the sandbox, summed RSS, MB) once drawn. The first run
of each app warms the disk cache and is dropped when --runs > 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import deskpilot
from deskpilot.workflow.runner import _wait_quiet

APPS = [("xterm", "xterm -title bench-xterm", "bench-xterm"), ("mousepad", "mousepad", "Mousepad"),
        ("calc", "localc", "LibreOffice Calc"), ("writer", "lowriter", "LibreOffice Writer")]
QUIET = 1.0


def _tree_rss_mb(pid: int) -> float:
    """Summed RSS of a process and all its descendants (host /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next((int(line.split()[1]) for line in fh if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total / 1024


def measure(command: str, title: str) -> tuple[float, float, float]:
    started = time.monotonic()
    with deskpilot.Sandbox(size=(1280, 800), apps=[command], ready_timeout=90) as desk:
        desk.sandbox.wait_for_window(title, timeout=90)
        mapped = time.monotonic() - started
        _wait_quiet(desk, QUIET, deadline=time.monotonic() + 90)
        drawn = time.monotonic() - started - QUIET
        rss = _tree_rss_mb(desk.apps[0].pid)
    return mapped, drawn, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{'app':10} {'window s':>9} {'drawn s':>8} {'RSS MB':>7}  (median of {max(1, args.runs - 1)} run(s))")
    for name, command, title in APPS:
        results = [measure(command, title) for _ in range(args.runs)]
        kept = results[1:] if len(results) > 1 else results
        mapped, drawn, rss = (statistics.median(r[i] for r in kept) for i in range(3))
        print(f"{name:10} {mapped:9.2f} {drawn:8.2f} {rss:7.0f}")


if __name__ == "__main__":
    main()
