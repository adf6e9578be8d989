"""What one step of the agent loop costs outside the model, per way of waiting after an action.

The full loop runs (deskpilot.agent.loop.agent.Agent): capture, save the PNG, build
the GLM-4.5V prompt, encode its images as an HTTP backend would (data URLs),
parse the reply, check the policy, act, wait for the screen, record (fsync).
The backend is a zero-latency simulator: scripted GLM-4.5V replies, answered
at once after encoding the request. Apps are real, in a sandboxed Xvfb.

Scenes (1920x1080 by default):
  xterm   : a full-screen xterm full of text; steps alternate typing a letter and backspace (reacts at once)
  tk      : the Tk probe app's entry; the same typing steps
  gtk     : mousepad (GTK 3, blinking caret); the same typing steps
  late    : the Tk settle app; each step clicks a canvas that toggles its colour 300 ms LATER;
            the next step's screenshot is checked for the new colour (a stale frame otherwise)
  clicks  : the Tk settle app; each step clicks its canvas, which draws a small mark under the pointer at once
            and nothing else (a pressed look: the click steps issue 22 measured at ~60-66 ms)
  dropdown: the Tk settle app's drop-down list; steps alternate opening it and clicking an item, which is
            highlighted at once and closes the list 35 ms later (LibreOffice's way); every screenshot is
            checked: the list must show after opening and be gone after choosing (a stale frame otherwise)
  dropslow: the same list closing 120 ms after the highlight (a loaded LibreOffice; longer than the old 50 ms)

Ways of waiting after an action:
  damage  : X DAMAGE events and window events (this code's default: a click's small drawing ends after the
            quiet period unless a popup or window event says more is coming)
  fixed50 : the rule before issue 22: X DAMAGE events, and every click whose drawing is small waits at least
            50 ms of quiet (no window events)
  frames  : the same rule with frame comparison (the fallback without DAMAGE)
  legacy  : the previous rule, two equal frames 50 ms apart
  sleep2s : a fixed 2 s sleep: the Anthropic computer-use demo (ComputerTool._screenshot_delay = 2.0)
            and OSWorld (DesktopEnv.step(action, pause=2) sleeps 2 s) both wait this long

Prints per scene and way: step wall time (median, p90), the parts (medians;
"model" is the simulator encoding the request), this process's CPU time per
step, and stale frames. Exit 1 if the damage way's median on the xterm or clicks scene is
over 30 ms or any damage-way frame was stale.
With --budgets, also a table for the xterm scene per --image-budget and
--history-images: image tokens per step against the unbudgeted cost, the
estimated prompt tokens, the share reusable from the previous step's prompt,
and what resizing costs the step.
With --verify, every frame grabbed early (during the quiet period) and handed
to the next step is compared with a fresh grab (which costs a grab per step):
any difference is printed and fails the gate.
Usage: python bench/loop_overhead.py [--steps 30] [--sleep-steps 4] [--size 1920x1080] [--scenes xterm,late] [--ways damage,fixed50]
       [--rounds 3] [--budgets] [--verify]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from deskpilot.agent.desk import settle as settle_module
from deskpilot.agent.loop.agent import Agent, LoopSettings
from deskpilot.agent.loop.policy import Policy
from deskpilot.agent.records.trajectory import load_run
from deskpilot.model_backend import ScriptedBackend
from deskpilot.model_backend.messages import request_to_openai_messages
from deskpilot.perception import Capturer
from deskpilot.sandbox import Bind, Sandbox

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from apps import APPS_DIR, EventLog, launch_probe, system_python  # noqa: E402

WAYS = {"damage": dict(settle="auto"), "fixed50": dict(settle="auto"), "frames": dict(settle="frames"),
        "legacy": dict(settle="legacy"), "sleep2s": dict(settle="sleep", settle_sleep_s=2.0)}
GATED = ("xterm", "clicks")  # scenes whose damage-way median must be <= TARGET_MS
LATE_MS = 300
TARGET_MS = 30.0


def box(call: str) -> str:
    return f"The next keystroke.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


class EncodingSimulator(ScriptedBackend):
    """Zero-latency model simulator: encodes the request like the HTTP backend (PNG data URLs), then answers."""

    async def acomplete(self, request):
        request_to_openai_messages(request)
        return self.complete(request)


def thousandths(x: int, y: int, size: tuple[int, int]) -> str:
    return f"[{round(x * 1000 / size[0])},{round(y * 1000 / size[1])}]"


EARLY = {"used": 0, "differed": 0}


def verify_early_frames() -> None:
    """Wrap Settler.take_frame: count early frames and compare each with a fresh grab."""
    from PIL import ImageChops

    take = settle_module.Settler.take_frame

    def checked(self):
        frame = take(self)
        if frame is not None:
            EARLY["used"] += 1
            box = ImageChops.difference(frame.image, self.grab().image).getbbox()
            if box:
                EARLY["differed"] += 1
                print(f"  early frame differs from a fresh grab in {box}", file=sys.stderr)
        return frame

    settle_module.Settler.take_frame = checked


def typing_replies() -> list[str]:
    return [box("type(content='x')"), box("key(keys='backspace')")]


def scene_xterm(sb):
    sb.launch(["xterm", "-maximized", "-T", "bench-xterm", "-e", "sh", "-c", "ls -l /usr/bin; exec sh"])
    sb.wait_for_window("bench-xterm", timeout=15)
    return typing_replies(), None


def scene_tk(sb):
    probe = launch_probe(sb, title="bench-probe", x=200, y=150)
    x, y = probe.point("e1", 40, 8)
    return [box(f"left_click(start_box='{thousandths(x, y, sb.size)}')")] + typing_replies() * 50, None


def scene_gtk(sb):
    sb.launch(["mousepad"])
    sb.wait_for_window("Mousepad", timeout=20)
    return typing_replies(), None


def settle_app(sb, *args: str) -> dict:
    app = sb.launch([system_python(), str(APPS_DIR / "settle_app.py"), *args], binds=[Bind(host=APPS_DIR)])
    return EventLog(app.stdout_path).wait_for(lambda e: e["ev"] == "ready", timeout=15)


def scene_clicks(sb):
    cx, cy, cw, ch = settle_app(sb, "--delay-ms", "-1", "--press-mark")["canvas"]
    points = [(cx + cw // 4 + 40 * k, cy + ch // 2) for k in range(5)]
    return [box(f"left_click(start_box='{thousandths(*point, sb.size)}')") for point in points], None


def scene_dropdown(sb, close_ms: int = 35):
    ready = settle_app(sb, "--delay-ms", "-1", "--popup-list", str(close_ms))
    bx, by, bw, bh = ready["chooser"]
    cx, cy, cw, ch = ready["canvas"]
    item = (cx + 40 + 120, cy + 10 + 64)  # row 3 of the list, which opens at the canvas' (40, 10)
    replies = [box(f"left_click(start_box='{thousandths(bx + bw // 2, by + bh // 3, sb.size)}')"),
               box(f"left_click(start_box='{thousandths(*item, sb.size)}')")]
    return replies, ("list", item)


def scene_late(sb):
    cx, cy, cw, ch = settle_app(sb, "--delay-ms", str(LATE_MS))["canvas"]
    point = (cx + cw // 2, cy + ch // 3)
    # two points of the same canvas in turn: the same action repeated would make the loop's stuck check compare
    # (and grab) frames every step, ~1.5 s that has nothing to do with the wait measured here
    points = [point, (point[0] + 40, point[1])]
    return [box(f"left_click(start_box='{thousandths(*p, sb.size)}')") for p in points], point


SCENES = {"xterm": scene_xterm, "tk": scene_tk, "gtk": scene_gtk, "late": scene_late, "clicks": scene_clicks,
          "dropdown": scene_dropdown, "dropslow": lambda sb: scene_dropdown(sb, 120)}


def stale_frames(run_dir: Path, steps: int, point) -> int:
    """Stale screenshots: see the scenes' checks."""
    if point[0] == "list":  # dropdown scenes
        return stale_list_frames(run_dir, steps, point[1])
    return stale_late_frames(run_dir, steps, point)


def stale_list_frames(run_dir: Path, steps: int, item) -> int:
    """Dropdown scene: odd steps open the list (the next screenshot must show it), even steps choose (it must be gone)."""
    def shows_list(k: int) -> bool:
        with Image.open(run_dir / f"step_{k:03d}.png") as shot:
            return shot.convert("RGB").getpixel(item) != (255, 255, 255)  # the list (or its highlight), not the canvas

    return sum(shows_list(k) != (k % 2 == 0) for k in range(2, steps + 1))


def stale_late_frames(run_dir: Path, steps: int, point) -> int:
    """Late scene: every click toggles the canvas colour; a screenshot not showing the previous step's toggle was stale."""
    def red(k: int) -> bool:
        with Image.open(run_dir / f"step_{k:03d}.png") as shot:
            return shot.convert("RGB").getpixel(point) == (255, 0, 0)

    first = red(1)
    return sum(red(k) != (first if k % 2 else not first) for k in range(2, steps + 1))


def run_way(sb, capturer, replies, way: str, steps: int, out: Path, point, **loop):
    times: list[float] = []
    cpu: list[float] = []

    def on_event(event):
        if getattr(event, "kind", None) == "thinking":
            times.append(time.perf_counter())
            cpu.append(time.process_time())

    settings = LoopSettings(thinking=False, **WAYS[way], **loop)
    policy = Policy(max_steps=steps, stuck_repeats=10_000)
    backend = EncodingSimulator(replies, loop=True, keep_requests=False)
    with old_rule(way == "fixed50"), Agent(backend, sb, run_dir=out, policy=policy, settings=settings,
                                           capturer=capturer, on_event=on_event) as agent:
        asyncio.run(agent.arun("benchmark"))
    run = load_run(out)
    walls = [(b - a) * 1000 for a, b in zip(times, times[1:])]
    cpus = [(b - a) * 1000 for a, b in zip(cpu, cpu[1:])]
    parts = {}
    for key in ("capture", "screenshot_save", "prompt", "model", "parse", "act", "settle"):
        values = [s.timings_ms.get(key, 0.0) for s in run.steps[:-1]]
        parts[key] = statistics.median(values) if values else 0.0
    stale = stale_frames(out, len(run.steps), point) if point else None
    flagged = sum(bool(s.settle and s.settle.get("stale_before_act")) for s in run.steps)
    parts["cpu"] = statistics.median(cpus)
    quiet_end = [s.settle["quiet_end_ms"] for s in run.steps[:-1] if s.settle and "quiet_end_ms" in s.settle]
    if quiet_end:
        parts["quiet_end"] = statistics.median(quiet_end)  # the quiet period that ended the wait  # this process's CPU time per step, all threads: what load cannot inflate much
    later = run.steps[5:] or run.steps  # past the first steps, once the history window is full
    parts["tokens"] = {key: statistics.median(getattr(s.request, key) for s in later)
                       for key in ("image_tokens", "image_tokens_default", "prompt_tokens_est", "prefix_share")}
    return walls, parts, stale, flagged


@contextmanager
def old_rule(active: bool):
    """The settle before issue 22 (50 ms of quiet after every small click drawing, no window events), in the same process."""
    if not active:
        yield
        return
    original = settle_module.Settler.open.__func__

    def open_old(cls, capturer, settings=None, **kwargs):
        settings = (settings or settle_module.SettleSettings()).model_copy(
            update={"click_quiet_s": 0.05, "watch_windows": False})
        return original(cls, capturer, settings, **kwargs)

    settle_module.Settler.open = classmethod(open_old)
    try:
        yield
    finally:
        settle_module.Settler.open = classmethod(original)


def wait_table(size, actions: int) -> None:
    """The wait alone (no loop, no early frame), both rules on the same app, action by action in turn.

    Less disturbed by a loaded machine than the loop's step times: the wait mostly sleeps on X events.
    clicks: a small mark per click; dropslow: open the list, choose an item (closes 120 ms later); a frame
    grabbed right after a choose's wait that still shows the list is stale.
    """
    from deskpilot.actions.executor import Executor
    from deskpilot.actions.models import Click

    print(f"\n{'scene':8s} {'rule':8s} {'wait median':>11s} {'p90':>6s} {'quiet at end':>12s}  held / stale")
    for scene in ("clicks", "dropslow"):
        with Sandbox(size=size) as sb, Capturer(sb) as capturer, Executor.for_sandbox(sb) as ex:
            replies, point = SCENES[scene](sb)
            clicks = [tuple(round(int(v) * side / 1000) for v, side in zip(r.split("'[")[1].split("]")[0].split(","), size))
                      for r in replies]
            time.sleep(1.0)
            rules = {"damage": settle_module.SettleSettings(),
                     "fixed50": settle_module.SettleSettings(click_quiet_s=0.05, watch_windows=False)}
            settlers = {name: settle_module.Settler.open(capturer, rules[name]) for name in rules}
            seen: dict[str, list] = {name: [] for name in rules}
            try:
                for k in range(actions):
                    for name, settler in settlers.items():
                        for n, (x, y) in enumerate(clicks):
                            settler.frame_taken()
                            settler.before_act(Click(x=x, y=y))
                            ex.perform(Click(x=x, y=y))
                            result = settler.after_act()
                            stale = None
                            if point is not None and n % 2 == 1:  # after choosing: the list must be gone
                                stale = capturer.grab().image.getpixel(point[1]) != (255, 255, 255)
                            seen[name].append((result, stale))
                            time.sleep(0.15)  # a late close of the other rule's list lands before the next action
            finally:
                for settler in settlers.values():
                    settler.close()
            for name, rows in seen.items():
                waits = [r.wait_ms for r, _ in rows]
                stale = [st for _, st in rows if st is not None]
                held = sum(bool(r.held) for r, _ in rows)
                print(f"{scene:8s} {name:8s} {statistics.median(waits):11.1f} {p90(waits):6.1f}"
                      f" {statistics.median(r.quiet_end_ms for r, _ in rows):12.1f}  held {held}/{len(rows)}"
                      + (f", stale {sum(stale)}/{len(stale)}" if stale else ""), flush=True)


def pool(runs: list[tuple]) -> tuple:
    """One way's rounds as one: all step times, the median of each part's per-round medians, stale frames summed."""
    walls = [w for run in runs for w in run[0]]
    parts = {key: statistics.median(run[1][key] for run in runs) for key in runs[0][1] if key != "tokens"}
    parts["tokens"] = runs[0][1]["tokens"]
    stale = None if runs[0][2] is None else sum(run[2] for run in runs)
    return walls, parts, stale, sum(run[3] for run in runs)


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.9 * len(values))) - 1)]


def machine() -> str:
    import os
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores {cpu}, Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"


BUDGETS = [(None, None), ("2691", 4), ("1200", 4), ("600", 4), ("1200", 2), (None, 0)]


def budget_table(size, steps: int, tmp: Path) -> None:
    """The xterm scene with the damage settle, per --image-budget / --history-images: tokens and step cost."""
    print(f"\n{'budget':>7s} {'hist':>4s} {'image tok':>9s} {'unbudgeted':>10s} {'saved':>6s} {'prompt tok':>10s}"
          f" {'prefix':>6s} {'median ms':>9s} {'prompt ms':>9s} {'cpu ms':>6s}")
    with Sandbox(size=size) as sb, Capturer(sb) as capturer:
        replies, point = scene_xterm(sb)
        time.sleep(1.0)
        for budget, history in BUDGETS:
            loop = {"image_budget": budget, "history_images": history}
            walls, parts, _, _ = run_way(sb, capturer, replies, "damage", steps + 1,
                                         tmp / f"budget-{budget}-{history}", None, **loop)
            tok = parts["tokens"]
            saved = 100 * (1 - tok["image_tokens"] / tok["image_tokens_default"])
            print(f"{budget or 'full':>7s} {history if history is not None else 4:>4d} {tok['image_tokens']:>9.0f}"
                  f" {tok['image_tokens_default']:>10.0f} {saved:>5.0f}% {tok['prompt_tokens_est']:>10.0f}"
                  f" {100 * tok['prefix_share']:>5.0f}% {statistics.median(walls):>9.1f} {parts['prompt'] + parts['model']:>9.1f}"
                  f" {parts['cpu']:>6.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sleep-steps", type=int, default=4, help="steps for the 2 s sleep (it only costs time)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--scenes", default=",".join(SCENES))
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--budgets", action="store_true", help="also the image-budget table (xterm scene)")
    parser.add_argument("--verify", action="store_true", help="compare each early frame with a fresh grab")
    parser.add_argument("--waits", type=int, default=0, metavar="N",
                        help="also the wait alone per rule, N rounds of each scene's actions (clicks, dropslow)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the ways in turn this many times per scene and pool the steps (fairer on a shared machine)")
    args = parser.parse_args(argv)
    if args.verify:
        verify_early_frames()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    scenes = [s for s in args.scenes.split(",") if s]
    ways = [w for w in args.ways.split(",") if w]
    if unknown := [s for s in scenes if s not in SCENES] + [w for w in ways if w not in WAYS]:
        print(f"error: unknown scene/way {unknown}", file=sys.stderr)
        return 2
    if "gtk" in scenes and not shutil.which("mousepad"):
        print("note: mousepad is not installed; skipping the gtk scene", file=sys.stderr)
        scenes.remove("gtk")
    print(machine())
    print(f"{'scene':6s} {'way':8s} {'median':>8s} {'p90':>8s}  parts (medians, ms)  stale")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for scene in scenes:
            with Sandbox(size=size) as sb, Capturer(sb) as capturer:
                replies, point = SCENES[scene](sb)
                time.sleep(1.0)
                pooled: dict[str, list] = {way: [] for way in ways}
                for round_ in range(args.rounds):
                    for way in ways:
                        time.sleep(LATE_MS / 1000 + 0.2)  # the previous way's last reaction lands first
                        steps = args.sleep_steps if way.startswith("sleep") else args.steps
                        pooled[way].append(run_way(sb, capturer, replies, way, steps + 1,
                                                   Path(tmp) / f"{scene}-{way}-{round_}", point))
                for way in ways:
                    walls, parts, stale, flagged = pool(pooled[way])
                    med = statistics.median(walls)
                    early = f"  early frames {EARLY['used']} ({EARLY['differed']} differed)" if args.verify else ""
                    failed = failed or EARLY["differed"] > 0
                    EARLY.update(used=0, differed=0)
                    shown = " ".join(f"{k} {v:.1f}" for k, v in parts.items() if k != "tokens")
                    stale_text = "-" if stale is None else f"{stale}/{len(walls)}"
                    print(f"{scene:6s} {way:8s} {med:8.1f} {p90(walls):8.1f}  {shown}  {stale_text}"
                          + (f"  (flagged changed-before-act {flagged})" if flagged else "") + early, flush=True)
                    if way == "damage" and (stale or (scene in GATED and med > TARGET_MS and not args.verify)):
                        failed = True
        if args.budgets and "xterm" in scenes:
            budget_table(size, args.steps, Path(tmp))
        if args.waits:
            wait_table(size, args.waits)
    print(f"gate (damage: {'/'.join(GATED)} median <= {TARGET_MS:g} ms, no stale frame): {'FAIL' if failed else 'PASS'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
