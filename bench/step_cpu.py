"""Where the CPU of one eval step goes, process by process, at ONE desktop.

Runs `deskpilot eval` on the bundled example suite at --parallel 1 against
bench/glm_simulator.py (a SIMULATOR of a GLM-4.5V server, --delay seconds per
call), samples the eval's process tree every --every seconds from /proc and
keeps each process's last CPU time (user + system) under a role: the eval
process, Xvfb, openbox, the apps (by program), the input workers (forked from
the fork server), reapers, bubblewrap, the accessibility bus. What no sample
saw (processes shorter than a sample period, the part of a process's life
after its last sample) is the difference to the kernel's total for the tree
(RUSAGE_CHILDREN) and is reported as "unseen (short-lived)".

With --py-spy FILE the eval process is also sampled by py-spy (raw collapsed
stacks, --idle off) so its own share can be split by function.

Usage: python bench/step_cpu.py [--delay 2] [--repeat 1] [--py-spy FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}


def role(p: psutil.Process, root: int) -> str:
    """A short name for what this process is in a desk."""
    if p.pid == root:
        return "eval process"
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "?"
    text = " ".join(cmd)
    name = os.path.basename(cmd[0]) if cmd else p.name()
    if "actions.forkserver" in text:
        return "fork server"
    if "_worker" in text or (name.startswith("python") and "forkserver" in p.name()):
        return "input worker"
    if "_supervisor.py" in text:
        return "sandbox supervisor (host reaper)"
    if "deskpilot reaper" in text:
        return "PID 1 reaper (per app)"
    if "_launch.py" in text:
        return "launcher (uid mapping)"
    if name == "Xvfb":
        return "Xvfb"
    if "openbox" in text:
        return "openbox"
    if "dbus-daemon" in text or "at-spi" in text:
        return "a11y bus"
    if name in ("bwrap", "setpriv", "unshare", "nsenter"):
        return name
    if "soffice" in text or "localc" in text:
        return "app: libreoffice"
    if "mousepad" in text:
        return "app: mousepad"
    if "xterm" in text or "term.sh" in text or name in ("sh", "bash"):
        return "app: xterm (+ shell)"
    if name.startswith("python"):
        return "app: tk (python)" if ".py" in text else "python (other)"
    return f"other: {name}"


class Sampler(threading.Thread):
    """Keeps the last CPU seconds seen for every process under `root`, with its role."""

    def __init__(self, root: int, every: float):
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.seen: dict[tuple[int, float], tuple[str, float]] = {}  # (pid, create time) -> (role, cpu s)
        self.stop = threading.Event()

    def sample(self) -> None:
        try:
            top = psutil.Process(self.root)
            procs = [top, *top.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                key = (p.pid, p.create_time())
                t = p.cpu_times()
                old = self.seen.get(key)
                now = role(p, self.root)  # again each time: a wrapper (setpriv, a reaper's fork) execs the program
                self.seen[key] = (old[0] if old and now == "?" else now, t.user + t.system)
            except psutil.Error:
                continue

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()


def run(args) -> dict:
    sim = subprocess.Popen([sys.executable, str(HERE / "glm_simulator.py"), "--suite", str(SUITE), "--delay",
                            str(args.delay)], stdout=subprocess.PIPE, text=True, env=_env())
    url = sim.stdout.readline().split()[-1]
    try:
        with tempfile.TemporaryDirectory(prefix="deskpilot-stepcpu-") as tmp:
            out = Path(tmp) / "out"
            cmd = [sys.executable, "-m", "deskpilot.cli", "eval", str(SUITE), "--parallel", "1", "--repeat",
                   str(args.repeat), "--out", str(out), "--base-url", url, "--no-thinking", "--quiet"]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            load0, wall0 = os.getloadavg()[0], time.monotonic()
            proc = subprocess.Popen(cmd, env=_env(), stderr=subprocess.PIPE, text=True)
            spy = None
            if args.py_spy:
                spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "-r", "100", "-p", str(proc.pid), "-o",
                                        str(args.py_spy)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sampler = Sampler(proc.pid, args.every)
            sampler.start()
            _, err = proc.communicate()
            wall = time.monotonic() - wall0
            sampler.stop.set()
            sampler.join()
            spy_cpu = 0.0
            if spy:  # reaped here with its rusage: py-spy is our child too, its CPU is not the eval's
                _, _, usage = os.wait4(spy.pid, 0)
                spy.returncode, spy_cpu = 0, usage.ru_utime + usage.ru_stime
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode not in (0, 1):
                raise SystemExit(f"eval failed ({proc.returncode}): {err[-2000:]}")
            total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            total -= spy_cpu
            results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
            steps = sum(r["steps"] for r in results)
            per_task: dict[str, int] = {}
            for r in results:
                per_task[r["id"]] = per_task.get(r["id"], 0) + r["steps"]
    finally:
        sim.kill()
        sim.wait()
    roles: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r, cpu in sampler.seen.values():
        roles[r] = roles.get(r, 0.0) + cpu
        counts[r] = counts.get(r, 0) + 1
    # Processes that outlive their parent (the fork server is a daemon) are reaped by init, so the kernel's
    # total for our children can be short of what the samples saw: the larger of the two is the total.
    roles["unseen (short-lived)"] = max(0.0, total - sum(roles.values()))
    total = max(total, sum(roles.values()))
    return {
        "steps": steps, "attempts": len(results), "passed": sum(r["passed"] for r in results),
        "wall_s": round(wall, 1), "cpu_s": round(total, 2), "cpu_ms_per_step": round(total / steps * 1000, 1),
        "load_start": round(load0, 2), "load_end": round(os.getloadavg()[0], 2),
        "roles_ms_per_step": {k: round(v / steps * 1000, 1) for k, v in sorted(roles.items(), key=lambda kv: -kv[1])},
        "processes": counts, "steps_per_task": per_task,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--every", type=float, default=0.05, help="seconds between /proc samples")
    ap.add_argument("--py-spy", type=Path, help="also record the eval process with py-spy (raw stacks) to FILE")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.py_spy and not shutil.which("py-spy"):
        print("error: py-spy is not installed", file=sys.stderr)
        return 2
    row = run(args)
    print(json.dumps(row, indent=1))
    print(f"\n{row['cpu_ms_per_step']} ms of CPU per step ({row['steps']} steps, {row['attempts']} attempts, "
          f"{row['wall_s']} s wall, load {row['load_start']}->{row['load_end']})")
    for k, v in row["roles_ms_per_step"].items():
        print(f"  {k:28s} {v:7.1f} ms/step  ({row['processes'].get(k, '-')} processes)")
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
