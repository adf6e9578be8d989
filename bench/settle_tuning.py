"""How long a quiet period the DAMAGE settle needs: drawing timelines of real apps' reactions.

For each app (xterm, the Tk probe app, mousepad) a fixed list of actions is
performed, and every damage event of the following 1.5 s is recorded (caret-
shaped ones and small late ones aside, as the settle ignores them). For a candidate quiet period Q, the settle would stop at
the first gap of at least Q after the first change (or at 1 s if nothing
changed); drawing that came AFTER that point is "missed": the screenshot
would have shown a half-finished reaction. Printed per Q: actions with missed
drawing, and the median wait.
Usage: python bench/settle_tuning.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from deskpilot.actions.executor import Executor
from deskpilot.actions.models import Click, Key, Type
from deskpilot.agent.desk.settle import caret_shaped
from deskpilot.perception.damage import DamageWatcher
from deskpilot.sandbox import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from apps import launch_probe

QUIETS_MS = [3, 5, 8, 10, 15, 25, 50]
WINDOW_S = 1.5


def key(name: str) -> Key:
    return Key.model_validate({"keys": name})


def xterm_actions(sb):
    sb.launch(["xterm", "-maximized", "-T", "tune-xterm"])
    sb.wait_for_window("tune-xterm", timeout=15)
    return [("type", Type(text="echo hello")), ("enter", key("enter")),
            ("ls output", Type(text="ls -l /usr/bin | head -60\n")), ("clear", key("ctrl+l")),
            ("backspace", key("backspace"))]


def tk_actions(sb):
    probe = launch_probe(sb, title="tune-probe", x=200, y=150)
    ex, ey = probe.point("e1", 40, 8)
    tx, ty = probe.point("text", 40, 8)
    return [("click entry", Click(x=ex, y=ey)), ("type", Type(text="hello world")), ("select all", key("ctrl+a")),
            ("click text", Click(x=tx, y=ty)), ("type text", Type(text="line one\nline two\n"))]


def gtk_actions(sb):
    sb.launch(["mousepad"])
    sb.wait_for_window("Mousepad", timeout=20)
    return [("type", Type(text="hello world")), ("enter", key("enter")), ("open dialog", key("ctrl+o")),
            ("close dialog", key("escape")), ("menu", key("alt+f")), ("close menu", key("escape")),
            ("select all", key("ctrl+a")), ("delete", key("backspace"))]


APPS = {"xterm": xterm_actions, "tk": tk_actions, "gtk": gtk_actions}


def timeline(watcher: DamageWatcher, start: float) -> list[float]:
    """Times (s after the action ended) of damage within the window, minus what the settle never waits for:
    caret shapes, and small areas (<= 1% of the screen) changing later than 100 ms (blinking carets)."""
    small = 0.01 * watcher.size[0] * watcher.size[1]
    times = []
    while (left := start + WINDOW_S - time.monotonic()) > 0:
        for d in watcher.poll(left):
            late_small = d.rect.area <= small and d.when - start > 0.1
            if not caret_shaped(d.rect) and not late_small:
                times.append(d.when - start)
    return times


def judge(times: list[float], quiet: float) -> tuple[float, bool]:
    """(wait the settle would make, whether drawing came after it)."""
    if not times or times[0] > 1.0:
        return 1.0, bool(times)
    last = times[0]
    for t in times[1:]:
        if t - last >= quiet:
            return last + quiet, True
        last = t
    return last + quiet, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--apps", default=",".join(APPS))
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} at start")
    records: list[tuple[str, str, list[float]]] = []
    for app in args.apps.split(","):
        with Sandbox((1920, 1080)) as sb:
            actions = APPS[app](sb)
            time.sleep(1.0)
            with DamageWatcher.for_sandbox(sb) as watcher, Executor.for_sandbox(sb) as ex:
                for _ in range(args.rounds):
                    for name, action in actions:
                        watcher.poll(0.3)  # let the previous reaction finish
                        watcher.poll()
                        ex.perform(action)
                        records.append((app, name, timeline(watcher, time.monotonic())))
    print(f"{'app':5s} {'action':12s} {'first ms':>8s} {'last ms':>8s} {'max gap ms':>10s}  missed at " +
          " ".join(f"{q}ms" for q in QUIETS_MS))
    for app, name in dict.fromkeys((a, n) for a, n, _ in records):
        runs = [times for a, n, times in records if (a, n) == (app, name)]
        first = statistics.median(t[0] * 1000 for t in runs) if all(runs) else float("nan")
        last = statistics.median(t[-1] * 1000 for t in runs) if all(runs) else float("nan")
        gap = max((max((b - a for a, b in zip(t, t[1:])), default=0) for t in runs), default=0) * 1000
        missed = " ".join(f"{sum(judge(t, q / 1000)[1] for t in runs)}/{len(runs)}" for q in QUIETS_MS)
        print(f"{app:5s} {name:12s} {first:8.1f} {last:8.1f} {gap:10.1f}  {missed}")
    print(f"{'quiet ms':>8s} {'missed drawing':>15s} {'median wait ms':>15s}")
    for quiet in QUIETS_MS:
        judged = [judge(times, quiet / 1000) for _, _, times in records]
        missed = sum(m for _, m in judged)
        print(f"{quiet:>8d} {missed:>7d} of {len(judged):<5d} {1000 * statistics.median(w for w, _ in judged):>15.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
