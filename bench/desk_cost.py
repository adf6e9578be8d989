"""Where the CPU of starting (and closing) one pool desk goes, process by process.

A desk (agent/desk/pool.py `build_desk`) is: a sandbox directory with a cookie and
a reaper process, Xvfb, openbox under bubblewrap, the task's app under
bubblewrap, a capturer, a settle watch until the first window is still, the
input worker, and (for eval) private copies of the shared folders. The
concurrency bench showed desk start-up is about half of our CPU per step for
the example suite's short tasks; this script says which part costs what.

For each desk, built one after the other in this process (nothing else of
ours runs meanwhile): this process's CPU per phase (time.process_time), and
the CPU of every process the desk started, read from /proc just before the
desk is closed, grouped by role; then the CPU of closing (this process plus
the children reaped). Median over --rounds desks per app.

Usage: python bench/desk_cost.py [--rounds 6] [--apps tk,xterm] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "deskpilot" / "eval" / "example"
APPS = {
    "tk": (f"python3 {EXAMPLE / 'counter.py'}", []),
    "tk+share": (f"python3 {EXAMPLE / 'todo.py'} {EXAMPLE / 'data' / 'todo.txt'}", [EXAMPLE / "data"]),
    "xterm": ("xterm", []),
}


def _role(p: psutil.Process) -> str:
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "?"
    text = " ".join(cmd)
    if "actions.forkserver" in text:
        return "fork server"
    if "_supervisor.py" in text:
        return "reaper"
    if "actions._worker" in text or "_worker" in text and "deskpilot" in text:
        return "input worker"
    if "_launch.py" in text:
        return "launcher"
    name = os.path.basename(cmd[0]) if cmd else p.name()
    if name == "Xvfb":
        return "Xvfb"
    if name in ("bwrap", "setpriv", "unshare"):
        return name
    if "openbox" in text:
        return "openbox"
    return "app"


def _cpu(p: psutil.Process) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    except psutil.Error:
        return 0.0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one_desk(spec, fresh_shares: bool) -> dict[str, float]:
    from deskpilot.actions.executor import Executor
    from deskpilot.agent.desk.apps import plan_binds
    from deskpilot.agent.desk.office import prepare_home
    from deskpilot.agent.desk.session import wait_until_ready
    from deskpilot.perception import Capturer
    from deskpilot.sandbox import Bind, Sandbox
    import shutil

    cpu: dict[str, float] = {}
    me = psutil.Process()
    kids0 = _children_cpu()
    server0 = {p.pid: _cpu(p) for p in me.children() if _role(p) == "fork server"}
    wall0 = time.monotonic()

    def lap(name: str, t0: float) -> float:
        now = time.process_time()
        cpu[f"owner: {name}"] = (now - t0) * 1000
        return now

    t = time.process_time()
    sb = Sandbox(size=tuple(spec.size), isolation=spec.isolation, network=spec.network, maximize=spec.maximize)
    t = lap("sandbox (dir, cookie, reaper, Xvfb, openbox)", t)
    shares = {}
    for n, share in enumerate(spec.shares):
        host = sb.dir / "shares" / f"{n}-{Path(share).name}" if fresh_shares else Path(share)
        if fresh_shares:
            shutil.copytree(share, host, symlinks=True)
        shares[share] = host
    binds = [Bind(host=h, target=Path(i), writable=True) for i, h in shares.items()]
    t = lap("share copies", t)
    prepare_home(sb.home, [a.argv for a in spec.apps], spec.shares)
    sb.give_to_apps(sb.home / ".config")
    handles = [sb.launch(a.argv, binds=[*plan_binds(a.binds, spec.shares), *binds]) for a in spec.apps]
    t = lap("launch app", t)
    capturer = Capturer(sb)
    t = lap("capturer", t)
    wait_until_ready(sb, capturer, handles=handles)
    t = lap("wait until ready", t)
    worker = Executor.for_sandbox(sb)
    t = lap("input worker (ours)", t)
    cpu["wall start ms"] = (time.monotonic() - wall0) * 1000
    servers = [p for p in me.children() if _role(p) == "fork server"]
    for p in me.children(recursive=True):
        role = _role(p)
        if role == "fork server" or any(p.ppid() == s.pid for s in servers):
            continue  # counted below, from the server's totals
        cpu[role] = cpu.get(role, 0.0) + _cpu(p) * 1000
    t0, kids1 = time.process_time(), _children_cpu()
    worker.close()
    capturer.close()
    sb.close()
    cpu["owner: close"] = (time.process_time() - t0) * 1000
    time.sleep(0.1)  # the fork server reaps the worker
    for p in me.children():
        if _role(p) == "fork server" and p.pid in server0:
            cpu["input worker (forked, + server)"] = (_cpu(p) - server0[p.pid]) * 1000
    cpu["children: close (reaper teardown etc.)"] = (_children_cpu() - kids1) * 1000 - sum(
        v for k, v in cpu.items() if not k.startswith(("owner", "wall", "input worker (forked"))) + (kids1 - kids0) * 1000
    cpu["total CPU ms"] = sum(v for k, v in cpu.items() if k != "wall start ms")
    return cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--apps", default="tk,tk+share,xterm")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from deskpilot.agent.desk.pool import make_spec

    report = {}
    for name in args.apps.split(","):
        command, shares = APPS[name]
        spec = make_spec((1280, 800), [command], shares=shares)
        one_desk(spec, True)  # warm the page cache and our imports
        rows = [one_desk(spec, True) for _ in range(args.rounds)]
        keys = list(dict.fromkeys(k for r in rows for k in r))
        med = {k: round(statistics.median(r.get(k, 0.0) for r in rows), 1) for k in keys}
        report[name] = med
        print(f"\n{name}: median of {args.rounds} desks (CPU ms unless named), load {os.getloadavg()[0]:.1f}")
        for k, v in sorted(med.items(), key=lambda kv: -kv[1]):
            print(f"  {k:45s} {v:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
