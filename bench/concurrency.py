"""How `deskpilot eval` scales with parallel sandboxes on this machine, with a 2 s model.

The same suite (the bundled example: Tk apps, xterm, mousepad) runs at 1, 4,
8, 16 and 32 parallel sandboxes against bench/glm_simulator.py (a SIMULATOR
of a GLM-4.5V server: scripted replies after --delay seconds, real HTTP). The
run at 1 sandbox is the baseline: ideal linear scaling is N times its
throughput. Each level runs enough attempts (about 3N) that the last partial
wave matters little; "steady" throughput counts only steps finished while
every slot was busy (before the queue ran dry).

Reported per level: tasks/min, steps/s, ratio to ideal (overall and steady),
CPU per sandbox (CPU seconds of the eval process and every process it started
/ sandbox-seconds), memory per sandbox (PSS of the processes a sandbox adds,
sampled while N are up), the runtime's own time per step (everything but the
model call; split into CPU work and waiting for the screen to settle) and the
client-side overhead of a model call (measured call time minus the delay).

Exits 1 unless the steady ratio is at least 0.90 at 8 and 0.75 at 32.
Usage: python bench/concurrency.py [--levels 1,4,8,16,32] [--delay 2] [--waves 3] [--warm 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SUITE = REPO / "deskpilot" / "eval" / "example" / "suite.yaml"
GATES = {8: 0.90, 32: 0.75}
CPU_WORK = ("capture", "screenshot_save", "prompt", "parse", "record", "act")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}


class Sampler(threading.Thread):
    """Every `every` s: sandboxes up (Xvfb processes under the eval) and the PSS they add."""

    def __init__(self, root: int, every: float = 3.0):
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.samples: list[tuple[int, float, float]] = []  # (sandboxes, PSS MB without the eval process, load)
        self.stop = threading.Event()
        self.eval_cpu = 0.0  # the eval process alone (its event loop and threads), last seen

    def _eval_cpu(self) -> None:
        try:
            self.eval_cpu = _own_cpu(psutil.Process(self.root))
        except psutil.Error:
            pass

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self._eval_cpu()
            try:
                procs = psutil.Process(self.root).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            pss, xvfb = 0, 0
            for p in procs:
                try:
                    xvfb += p.name() == "Xvfb"
                    pss += p.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.samples.append((xvfb, pss / 2**20, os.getloadavg()[0]))


def _own_cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def run_level(n: int, url: str, repeat: int, tmp: Path, sim: psutil.Process, warm: int = 1) -> dict:
    out = tmp / f"p{n}"
    cmd = [sys.executable, "-m", "deskpilot.cli", "eval", str(SUITE), "--parallel", str(n), "--repeat", str(repeat),
           "--out", str(out), "--base-url", url, "--no-thinking", "--quiet", "--warm", str(warm)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim0 = _own_cpu(sim)
    busy0 = _busy()
    load0 = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    _, err = proc.communicate()
    wall = time.monotonic() - start
    sampler.stop.set()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = _busy() - busy0  # CPU seconds the whole machine was busy (us and everyone else)
    sim_cpu = _own_cpu(sim) - sim0  # the model server's share (on a GPU host in real use)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"eval at {n} failed ({proc.returncode}): {err[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    steps = sum(r["steps"] for r in results)
    overhead, cpu_work, model_extra = [], [], []
    for r in results:
        for line in (out / r["run_dir"] / "trajectory.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "step":
                t = rec.get("timings_ms", {})
                overhead.append(sum(v for k, v in t.items() if k != "model"))
                cpu_work.append(sum(t.get(k, 0) for k in CPU_WORK))
                model_extra.append(t.get("model", 0))
            elif rec.get("kind") == "acted":
                overhead[-1] += sum(rec["timings_ms"].values())
                cpu_work[-1] += rec["timings_ms"].get("act", 0)
    summary = json.loads((out / "summary.json").read_text())
    sandbox_s = sum(r["wall_s"] for r in results)
    up = [s for s in sampler.samples if s[0] >= max(1, int(0.8 * n))]
    return {
        "parallel": n, "attempts": len(results), "passed": summary["passed"], "steps": steps, "wall_s": round(wall, 1),
        "tasks_per_min": round(len(results) / wall * 60, 2), "steps_per_s": round(steps / wall, 3),
        "steady_steps_per_s": steady_rate(out, results, n),
        "cpu_per_sandbox": round(cpu / sandbox_s, 3) if sandbox_s else None,
        "cpu_ms_per_step": round(cpu / steps * 1000, 1), "cpu_s": round(cpu, 1),
        "machine_cpu_ms_per_step": round(max(0.0, machine - sim_cpu) / steps * 1000, 1),
        "others_cpu_share": round(max(0.0, machine - cpu - sim_cpu) / (wall * (os.cpu_count() or 1)), 2),
        "simulator_cpu_share": round(sim_cpu / (wall * (os.cpu_count() or 1)), 2),
        "eval_process_cpu_s": round(sampler.eval_cpu, 1),
        "mem_per_sandbox_mb": round(statistics.median(s[1] / s[0] for s in up), 1) if up else None,
        "overhead_ms_per_step": round(statistics.mean(overhead), 1),
        "cpu_work_ms_per_step": round(statistics.mean(cpu_work), 1),
        "model_call_ms": round(statistics.median(model_extra), 1),
        "step_p50_ms": summary["step_latency_ms"]["p50"], "step_p90_ms": summary["step_latency_ms"]["p90"],
        "load_start": round(load0, 2), "load_max": round(max([s[2] for s in sampler.samples] or [load0]), 2),
    }


def _busy() -> float:
    """CPU seconds all CPUs of the machine have been busy so far."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def steady_rate(out: Path, results: list[dict], n: int) -> float | None:
    """Steps/s while all n slots were busy: from the n-th attempt's first step to the last attempt's first step."""
    starts, stamps = [], []
    for r in results:
        lines = [json.loads(x) for x in (out / r["run_dir"] / "trajectory.jsonl").read_text().splitlines()]
        mine = [_t(rec["time"]) for rec in lines if rec.get("kind") == "step"]
        starts += mine[:1]
        stamps += mine
    if len(starts) <= n:
        return None
    starts.sort()
    lo, hi = starts[n - 1], starts[-1]
    if hi - lo < 5:
        return None
    return round(sum(lo <= t < hi for t in stamps) / (hi - lo), 3)


def _t(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,4,8,16,32")
    parser.add_argument("--delay", type=float, default=2.0, help="simulated model seconds per step")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--waves", type=float, default=3.0,
                        help="attempts per level ~ waves x parallel (more waves: the overall ratio nears the steady one)")
    parser.add_argument("--warm", type=int, default=1, help="eval --warm: idle desks kept ready per distinct desktop")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    sim = subprocess.Popen([sys.executable, str(HERE / "glm_simulator.py"), "--suite", str(SUITE), "--delay",
                            str(args.delay)], stdout=subprocess.PIPE, text=True, env=_env())
    url = sim.stdout.readline().split()[-1]
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="deskpilot-bench-") as tmp:
            for n in levels:
                repeat = max(1, math.ceil(args.waves * n / 10)) if n > 1 else 1
                row = run_level(n, url, repeat, Path(tmp), psutil.Process(sim.pid), args.warm)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        sim.kill()
        sim.wait()
    base = rows[0]["steps_per_s"] / rows[0]["parallel"]
    print(f"\nsimulated model: {args.delay:g} s per call; machine: {os.cpu_count()} CPUs; baseline: {rows[0]['parallel']} "
          f"sandbox = {base:.3f} steps/s each")
    print("| parallel | attempts | wall s | tasks/min | steps/s | ratio | steady ratio | CPU/sandbox | CPU ms/step "
          "| machine CPU ms/step | MB/sandbox | runtime ms/step (CPU work) | model call ms | step p50/p90 ms | load start/max | others' CPU "
          "| simulator CPU | eval process CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for r in rows:
        ratio = r["steps_per_s"] / (base * r["parallel"])
        steady = r["steady_steps_per_s"] / (base * r["parallel"]) if r["steady_steps_per_s"] else None
        r["ratio"], r["steady_ratio"] = round(ratio, 3), (round(steady, 3) if steady else None)
        gate = GATES.get(r["parallel"])
        if gate is not None and (steady or ratio) < gate:
            failed = True
        print(f"| {r['parallel']} | {r['attempts']} ({r['passed']} passed) | {r['wall_s']} | {r['tasks_per_min']} | "
              f"{r['steps_per_s']} | {ratio:.2f} | {steady if steady is None else f'{steady:.2f}'} | "
              f"{r['cpu_per_sandbox']} | {r['cpu_ms_per_step']} | {r['machine_cpu_ms_per_step']} | {r['mem_per_sandbox_mb']} | {r['overhead_ms_per_step']} "
              f"({r['cpu_work_ms_per_step']}) | {r['model_call_ms']} | {r['step_p50_ms']}/{r['step_p90_ms']} | "
              f"{r['load_start']}/{r['load_max']} | {r['others_cpu_share']:.0%} | {r['simulator_cpu_share']:.0%} | "
              f"{r['eval_process_cpu_s']} |")
    cpu_step = statistics.median(r["cpu_ms_per_step"] for r in rows) / 1000
    step_s = rows[0]["parallel"] / rows[0]["steps_per_s"]
    print(f"CPU bound: {cpu_step * 1000:.0f} ms of CPU per step (sandbox start-up included) and {step_s:.2f} s per step "
          f"at 1 sandbox -> {os.cpu_count()} idle CPUs carry at most {(os.cpu_count() or 1) / cpu_step:.1f} steps/s, "
          f"i.e. ideal scaling up to ~{(os.cpu_count() or 1) / cpu_step * step_s:.0f} parallel sandboxes")
    print("CPU ms/step counts the eval and the children it reaps (RUSAGE_CHILDREN): processes that outlive their "
          "parent (the input workers' fork server, the sandbox supervisors, namespaced reapers) are not in it. "
          "Machine CPU ms/step is everything the machine did per step but the simulator: the true cost where "
          "nothing else runs (compare others' CPU at 1 sandbox).")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print("gates (steady ratio, else overall): " + ", ".join(f">= {g:.2f} at {n}" for n, g in GATES.items())
          + (": FAIL" if failed else ": PASS"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
