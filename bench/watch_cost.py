"""What watching a run costs: the live view (--live) and the video (--record) against no watcher.

On a sandboxed 1920x1080 display with a full-screen xterm and a Tk window
that changes colour every 130 ms (so every grabbed frame is a new one), it
measures, in the same run:

  baseline : a loop step's own look at the screen (Capturer.grab + encode_png), no watcher
  live     : the same step while the live view grabs at 5 fps for a page that polls
  record   : the same step while the recorder grabs at 5 fps and encodes H.264 (.mp4)

and the watchers' own cost per frame (live: grab + compare + JPEG; record:
grab + marks + encode), from their frame counters and the process CPU time.
Usage: python bench/watch_cost.py [--seconds 6] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from deskpilot.live import LiveView
from deskpilot.live.record import Recorder
from deskpilot.perception import Capturer, encode_png
from deskpilot.sandbox import Sandbox

BLINKER = """
import tkinter
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry("400x300+700+200")
def flip(i=0):
    root.configure(background=["#0000ff", "#00ff00"][i % 2])
    root.after(130, flip, i + 1)  # not a divisor of the 200 ms grab period
flip()
root.mainloop()
"""


def steps(capturer: Capturer, seconds: float) -> tuple[list[float], float]:
    """Step looks (grab + PNG) for `seconds`, one every 100 ms; their times and the process CPU seconds used."""
    times, cpu0, end = [], time.process_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        encode_png(capturer.grab().image)
        times.append((time.perf_counter() - t) * 1000)
        time.sleep(0.1)
    return times, time.process_time() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--size", default="1920x1080")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.size}, "
          f"{args.seconds:g} s per mode")
    with Sandbox(size) as sb, Capturer(sb) as capturer:
        sb.launch(["xterm", "-geometry", "250x80+0+0", "-e", "ls -l /usr/bin; sleep 600"])
        sb.wait_for_window("", timeout=20)
        time.sleep(1.0)
        sb.launch(["/usr/bin/python3", "-c", BLINKER])  # on top of the xterm: every frame differs
        time.sleep(2.0)
        rows = []
        base, base_cpu = steps(capturer, args.seconds)
        rows.append(("baseline", base, base_cpu, None))
        with LiveView(fps=5) as live:
            live.attach(sb)
            stop = time.monotonic() + args.seconds + 1
            live._last_request = stop  # a page keeps polling for the whole measurement
            before = live.frame()[0]
            times, cpu = steps(capturer, args.seconds)
            rows.append(("live 5 fps", times, cpu, live.frame()[0] - before))
            live.detach()
        with tempfile.TemporaryDirectory() as tmp:
            recorder = Recorder(Path(tmp) / "run.mp4", fps=5)
            recorder.attach(sb)
            times, cpu = steps(capturer, args.seconds)
            frames = recorder.frames
            recorder.close()
            size_kb = (Path(tmp) / "run.mp4").stat().st_size / 1024
            rows.append(("record 5 fps mp4", times, cpu, frames))
    print("\n| mode | step look median ms | p90 ms | process CPU % | watcher frames | CPU ms per frame |")
    print("|---|---|---|---|---|---|")
    for name, times, cpu, frames in rows:
        ordered = sorted(times)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        share = 100 * cpu / args.seconds
        extra = "" if frames is None else f"{frames}"
        per_frame = "" if not frames else f"{1000 * (cpu - base_cpu) / frames:.1f}"
        print(f"| {name} | {statistics.median(times):.1f} | {p90:.1f} | {share:.0f} | {extra} | {per_frame} |")
    print(f"\nvideo: {size_kb:.0f} KiB for {args.seconds:g} s")


if __name__ == "__main__":
    main()
