"""Per-step cost of deskpilot's capture+act path against the paths peers use.

One step = look at the screen (capture + encode) + one click + type 20 characters.
All three paths run on the same sandboxed 1920x1080 display, against the same
screen (a full xterm and the Tk probe app, whose entry receives the clicks/text):

  deskpilot : perception.Capturer.grab + encode_png + Executor (Click, Type)
  xdotool   : scrot to a file + ImageMagick convert resize + xdotool click + xdotool type
  pyautogui : screenshot() + click() + write() with peers' defaults, in a subprocess

Exits 1 unless deskpilot's median is under 40 ms and at least 10x faster than
the faster peer. Usage: python bench/step_cost.py [--steps N] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deskpilot.actions.models import Click, Type
from deskpilot.actions.executor import Executor
from deskpilot.perception import Capturer, encode_png
from deskpilot.sandbox import Sandbox

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from apps import launch_probe  # noqa: E402  (the Tk probe app is the click/type target)

TEXT = "hello world 12345 ab"  # 20 ASCII characters: the peers cannot type more
RESIZE = "1288x728!"  # a typical peer down-scale before sending the frame
MAX_MS, MIN_RATIO = 40.0, 10.0


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def bench_deskpilot(sb, target, steps: int) -> list[float]:
    x, y = target
    times, parts = [], []
    with Capturer(sb) as cap, Executor.for_sandbox(sb) as ex:
        for _ in range(steps + 1):
            start = time.perf_counter()
            image = cap.grab().image
            grabbed = _ms(start)
            encode_png(image)
            encoded = _ms(start)
            ex.perform(Click(x=x, y=y))
            ex.perform(Type(text=TEXT))
            times.append(_ms(start))
            parts.append((grabbed, encoded - grabbed, times[-1] - encoded))
    grab, enc, act = (statistics.median(p[i] for p in parts[1:]) for i in range(3))
    print(f"deskpilot  parts: capture {grab:.1f} ms, png encode {enc:.1f} ms, click + type {act:.1f} ms (medians)")
    return times[1:]


def bench_xdotool(sb, target, steps: int) -> list[float]:
    env = {"PATH": os.environ.get("PATH", os.defpath), **sb.env}
    x, y = target
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        shot, small = str(Path(tmp) / "shot.png"), str(Path(tmp) / "small.png")
        for _ in range(steps + 1):
            start = time.perf_counter()
            _run(["scrot", "-o", shot], env)
            _run(["convert", shot, "-resize", RESIZE, small], env)
            _run(["xdotool", "mousemove", str(x), str(y), "click", "1"], env)
            _run(["xdotool", "type", "--", TEXT], env)
            times.append(_ms(start))
    return times[1:]


def bench_pyautogui(sb, target, steps: int) -> list[float]:
    env = {"PATH": os.environ.get("PATH", os.defpath), "XDG_SESSION_TYPE": "x11", "HOME": str(sb.home), **sb.env}
    argv = [sys.executable, str(HERE / "_pyautogui_peer.py"), str(steps), *map(str, target), TEXT]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)


def _run(argv: list[str], env: dict) -> None:
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _scene(sb) -> tuple[int, int]:
    """A screen with real content (xterm full of text) and the probe app on top."""
    xterm = shutil.which("xterm")
    if xterm:
        sb.launch([xterm, "-geometry", "220x70+0+0", "-hold", "-T", "bench-xterm", "-e", "ls", "-l", "/usr/bin"])
        sb.wait_for_window("bench-xterm", timeout=10)
    probe = launch_probe(sb, title="bench-probe", x=sb.size[0] // 2, y=sb.size[1] // 4)
    return probe.point("e1", 40, 8)


def machine() -> str:
    """One line describing where the figures were measured."""
    import platform
    from importlib.metadata import version

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    ram = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    osname = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    pkgs = ", ".join(f"{p} {version(p)}" for p in ("mss", "pillow", "pyautogui", "python-xlib"))
    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} cores {cpu}, {ram:.0f} GiB RAM, {osname}, Python {platform.python_version()}, "
            f"{pkgs}; load average {load:.2f} at start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT of the display")
    args = parser.parse_args(argv)
    missing = [t for t in ("scrot", "convert", "xdotool") if not shutil.which(t)]
    if missing or args.steps < 1:
        print(f"error: missing tools {missing}" if missing else "error: --steps must be >= 1", file=sys.stderr)
        return 2
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size must look like 1920x1080, got {args.size!r}", file=sys.stderr)
        return 2
    print(machine())
    with Sandbox(size=(width, height), isolation="bwrap", network=False) as sb:
        target = _scene(sb)
        medians = {}
        for name, fn in (("deskpilot", bench_deskpilot), ("xdotool", bench_xdotool), ("pyautogui", bench_pyautogui)):
            times = fn(sb, target, args.steps)
            medians[name] = statistics.median(times)
            print(f"{name:10s} median {medians[name]:8.1f} ms  (min {min(times):.1f}, max {max(times):.1f}, n={len(times)})")
    peer = min(medians["xdotool"], medians["pyautogui"])
    ratio = peer / medians["deskpilot"]
    print(f"ratio (faster peer / deskpilot): {ratio:.1f}x at {width}x{height}")
    ok = medians["deskpilot"] < MAX_MS and ratio >= MIN_RATIO
    print("PASS" if ok else f"FAIL: need deskpilot < {MAX_MS:.0f} ms and >= {MIN_RATIO:.0f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
