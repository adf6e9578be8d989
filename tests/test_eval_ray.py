"""deskpilot eval --ray on a real local Ray cluster: a head node plus a second worker node on this machine.

The cluster is started with `ray start --block` (so stopping our own `ray
start` processes stops exactly the cluster we made, not other Ray users on
the machine). A worker is SIGKILLed in the middle of an attempt: Ray runs
the attempt again and the summary says it was retried.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the [ray] extra is not installed")

REPO = Path(__file__).resolve().parents[1]
COUNTER = REPO / "deskpilot" / "eval" / "example" / "counter.py"
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat[stat.rfind(")") + 2:].split()[1])


def _ours(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    marker = f"DESKPILOT_TEST_CLUSTER={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), marker.split("=")[0]: marker.split("=")[1],
           "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(f"/tmp/dpray-{uuid.uuid4().hex[:6]}")
    common = ["--block", "--disable-usage-stats", "--include-dashboard", "false"]
    head = subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--num-cpus", "2", "--temp-dir", str(temp),
                             "--node-ip-address", "127.0.0.1", *common], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [head]
    try:
        _wait_for_nodes(address, 1, env)
        worker = subprocess.Popen([RAY, "start", "--address", address, "--num-cpus", "1",
                                   "--node-ip-address", "127.0.0.1", *common[:2]], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(worker)
        _wait_for_nodes(address, 2, env)
        yield address, env, marker
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        deadline = time.monotonic() + 15
        while (left := [int(p) for p in os.listdir("/proc") if p.isdigit() and _ours(int(p), marker)]):
            if time.monotonic() > deadline:
                for pid in left:  # only processes of the cluster this fixture started
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, n: int, env: dict, timeout: float = 90) -> None:
    probe = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print(len([x for x in ray.nodes() if x['Alive']]))"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
        if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= n:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} never had {n} nodes")


def _box(call: str) -> str:
    return f"Next.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def _task(tid: str, script: list[str], app_arg: str = "") -> dict:
    return {"id": tid, "task": f"task {tid}", "desktop": {"size": "640x400", "apps": [f"python3 {COUNTER} {app_arg}".strip()]},
            "max_steps": 6, "tags": ["ray"], "script": script, "checks": [{"window_title": "Counter: 2"}]}


def _slow_worker(marker: str) -> int | None:
    """The Ray worker process running the slow attempt (its app carries a marker argument)."""
    for name in os.listdir("/proc"):
        if name.isdigit() and "slow-attempt-marker" in _cmdline(int(name)):
            pid = int(name)
            while pid > 1 and not _cmdline(pid).startswith("ray::"):
                pid = _ppid(pid)
            if pid > 1 and "attempt_on_worker" in _cmdline(pid) and _ours(pid, marker):
                return pid
    return None


def test_suite_on_a_ray_cluster_with_a_worker_killed_mid_task(cluster, tmp_path):
    address, env, marker = cluster
    two = [_box("left_click(start_box='[350,600]')")] * 2
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "ray-mini", "tasks": [
        _task("a", two + [_box("DONE()")]),
        _task("b", two + [_box("DONE()")]),
        _task("slow", two + [_box("WAIT()"), _box("DONE()")], app_arg="slow-attempt-marker"),
    ]}))
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--ray", address,
                               "--parallel", "3", "--out", str(out), "--quiet"], env=env, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and driver.poll() is None:
        found = _slow_worker(marker)
        if found is not None:
            time.sleep(1.0)  # in the middle of the attempt (its WAIT)
            try:
                os.kill(found, signal.SIGKILL)
                victim = found
            except ProcessLookupError:  # the pid seen was a passing process: look again
                pass
        time.sleep(0.2)
    assert victim is not None, f"never saw the slow attempt running on a Ray worker: {driver.poll()} {driver.stderr.read() if driver.poll() is not None else ''}"
    _, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] == 3 and summary["retried"] == ["slow~1"] and summary["ray"]["nodes"] == 2
    results = {json.loads(x)["id"]: json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()}
    assert results["slow"]["tries"] == 2 and results["a"]["tries"] == 1
    assert str(victim) not in results["slow"]["worker"]
    for r in results.values():  # the run folders came back to the driver
        assert (out / r["run_dir"] / "report.html").is_file() and (out / r["run_dir"] / "step_001.png").is_file()
    assert "retried after a lost worker: slow~1" in (out / "index.html").read_text()
    # the killed worker's sandbox did not outlive it
    deadline = time.monotonic() + 15
    while any("slow-attempt-marker" in _cmdline(int(p)) for p in os.listdir("/proc") if p.isdigit()):
        assert time.monotonic() < deadline, "the killed attempt's app is still running"
        time.sleep(0.2)


def test_no_cluster_at_the_address_is_one_line_in_seconds(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"tasks": [_task("a", [_box("DONE()")])]}))
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--ray", f"127.0.0.1:{port}",
                           "--out", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2 and time.monotonic() - started < 30
    assert proc.stderr.strip() == (f"error: no Ray cluster answers at 127.0.0.1:{port} (Connection refused): "
                                   "start one with `ray start --head`, or use --ray auto")


@pytest.mark.parametrize("where", ["before", "after"])
def test_update_baselines_is_refused_with_ray(tmp_path, where):
    """The root flag is taken before or after the command (argv is reordered before parsing)."""
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"tasks": [_task("a", [_box("DONE()")])]}))
    args = ["eval", str(suite), "--ray", "auto", "--out", str(tmp_path / "out"), "--quiet"]
    args = ["--update-baselines", *args] if where == "before" else [*args, "--update-baselines"]
    proc = subprocess.run([sys.executable, "-m", "deskpilot.cli", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: --update-baselines writes baselines on this machine; "
                                   "run the suite without --ray to update them")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("with_filter", [True, False])
def test_run_folders_unpack_safely_with_or_without_tar_filters(tmp_path, monkeypatch, with_filter):
    """Debian 12's Python 3.11.2 has no tarfile extraction filters: the fallback checks entries itself."""
    import io
    import tarfile

    from deskpilot.eval.ray_runner import _unpack
    from deskpilot.errors import DeskpilotError

    def archive(*names: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
        return buf.getvalue()

    if not with_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    _unpack(archive("run/step_001.png", "run/report.html"), tmp_path)
    assert (tmp_path / "run" / "report.html").read_bytes() == b"x"
    with pytest.raises((DeskpilotError, tarfile.TarError)):
        _unpack(archive("../outside.txt"), tmp_path / "deeper")
    assert not (tmp_path / "outside.txt").exists()


def test_shared_out_and_one_cap_on_model_calls_for_the_whole_cluster(cluster, tmp_path):
    """--ray-shared-out: workers write run folders into --out; --model-concurrency 1 holds across both nodes."""
    import urllib.request

    address, env, _ = cluster
    two = [_box("left_click(start_box='[350,600]')")] * 2
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "ray-shared", "tasks": [_task(t, two + [_box("DONE()")]) for t in "abc"]}))
    sim = subprocess.Popen([sys.executable, str(REPO / "bench" / "glm_simulator.py"), "--suite", str(suite),
                            "--delay", "0.3"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = sim.stdout.readline().split()[-1]
        out = tmp_path / "out"
        proc = subprocess.run([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--ray", address,
                               "--parallel", "3", "--model-concurrency", "1", "--base-url", url, "--no-thinking",
                               "--ray-shared-out", "--out", str(out), "--quiet"], env=env, capture_output=True,
                              text=True, timeout=240)
        stats = json.loads(urllib.request.urlopen(url.removesuffix("/v1") + "/stats").read())
    finally:
        sim.kill()
        sim.wait()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] == 3 and summary["ray"]["shared_out"] is True
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len({r["worker"].split("(node ")[1] for r in results}) == 2  # the attempts ran on both nodes
    assert stats["requests"] == 9 and stats["max_in_flight"] == 1  # one call at a time, cluster-wide
    assert summary["ray"]["model_calls"] == {"limit": 1, "calls": 9, "peak": 1, "expired": 0}
    for r in results:  # written on the workers, straight into --out
        assert (out / r["run_dir"] / "report.html").is_file() and (out / r["run_dir"] / "step_003.png").is_file()


def test_shared_out_needs_ray(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"tasks": [_task("a", [_box("DONE()")])]}))
    proc = subprocess.run([sys.executable, "-m", "deskpilot.cli", "eval", str(suite), "--ray-shared-out",
                           "--out", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 2 and "--ray-shared-out goes with --ray" in proc.stderr


def test_model_slots_free_a_dead_holders_slot_when_its_lease_runs_out():
    """The cluster-wide cap's actor class, run here on a plain event loop."""
    import asyncio

    from deskpilot.eval.ray_runner import ModelSlots

    async def scenario() -> tuple[float, float, dict]:
        slots = ModelSlots(limit=1, lease_s=0.4)
        first = await slots.acquire()
        t0 = time.monotonic()
        second = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0.1)
        assert not second.done()  # the one slot is held
        await slots.release(first)
        await second
        waited_release = time.monotonic() - t0
        t1 = time.monotonic()
        await slots.acquire()  # `second` is never released (its holder "died"): the lease frees it
        return waited_release, time.monotonic() - t1, slots.stats()

    waited_release, waited_lease, stats = asyncio.run(scenario())
    assert waited_release < 0.35 and 0.25 <= waited_lease < 2.0
    assert stats == {"limit": 1, "calls": 3, "peak": 1, "expired": 1}


def test_a_lost_attempts_folder_is_set_aside_for_its_retry(tmp_path):
    """With --ray-shared-out a retried attempt starts clean; the lost one's folder stays, renamed."""
    from deskpilot.eval.ray_runner import _set_aside

    folder = tmp_path / "runs" / "slow~1"
    for n in (1, 2):
        folder.mkdir(parents=True)
        (folder / "step_001.png").write_bytes(b"try %d" % n)
        _set_aside(folder)
    assert not folder.exists()
    assert (tmp_path / "runs" / "slow~1.lost1" / "step_001.png").read_bytes() == b"try 1"
    assert (tmp_path / "runs" / "slow~1.lost2" / "step_001.png").read_bytes() == b"try 2"
    _set_aside(folder)  # nothing there: nothing to do
