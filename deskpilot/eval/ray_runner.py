"""`deskpilot eval SUITE --ray auto|ADDRESS`: each attempt is a Ray task on an existing cluster.

Why Ray tasks and not actors: a desktop here is a few processes that start in
a fraction of a second, so each attempt builds its own sandbox on whatever
node Ray picks (``num_cpus=1``) and throws it away after; there is no state
worth keeping on a worker. If a worker dies mid-attempt (node lost, OOM,
killed), Ray runs the task again (``max_retries``); the dead worker's
sandbox is torn down by its own reaper. A small named actor (the ledger)
counts executions per attempt, so the driver can say which attempts were
retried.

Every node needs the deskpilot package and the system packages (Xvfb,
openbox, bubblewrap and the suite's apps) and must see the suite's folder at
the same path (a shared file system, or the same checkout on every node).
The model is one shared endpoint (``--base-url``, e.g. vLLM on GPU nodes);
``--model-concurrency`` caps the calls in flight across the whole cluster
through a second small actor (``ModelSlots``, a semaphore with leases, so a
slot held by a worker that died is freed when its lease runs out). The run
folders come back to the driver as tar archives and are unpacked into
``--out``; with ``--ray-shared-out`` (``--out`` on a file system every node
mounts at the same path) workers write them there directly and nothing is
shipped. results.jsonl, summary.json and index.html are written by the
driver as for a local evaluation.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from deskpilot.eval.results import AttemptResult, append_result, summarize, write_index, write_summary
from deskpilot.eval.runner import (
    EvalSettings,
    failed_attempt,
    finish_run,
    plan,
    run_attempt,
    skipped_attempt,
    suite_info,
    task_backend,
    task_spec,
)
from deskpilot.eval.suite import Suite, SuiteTask
from deskpilot.errors import ConfigError, DeskpilotError

RETRIES = 3  # executions after the first when a worker is lost


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the ray extra: pip install 'deskpilot[ray]'") from None
    return ray


class ModelSlots:
    """Actor: at most `limit` model calls in flight on the whole cluster (an async semaphore with leases).

    A worker takes a slot (a token) before each call and gives it back after.
    A worker that dies holding one cannot give it back: a slot is held at most
    `lease_s` (longer than a model call may take), then it is free again.
    """

    def __init__(self, limit: int, lease_s: float) -> None:
        self.limit, self.lease_s = limit, lease_s
        self.held: dict[int, float] = {}  # token -> when its lease runs out
        self.cond = asyncio.Condition()
        self.tokens = self.calls = self.peak = self.expired = 0

    async def acquire(self) -> int:
        async with self.cond:
            while True:
                now = time.monotonic()
                for token, until in list(self.held.items()):
                    if until < now:  # its holder died (or hung) past the lease
                        del self.held[token]
                        self.expired += 1
                if len(self.held) < self.limit:
                    break
                try:
                    await asyncio.wait_for(self.cond.wait(), max(0.05, min(self.held.values()) - now))
                except asyncio.TimeoutError:
                    pass
            self.tokens += 1
            self.held[self.tokens] = now + self.lease_s
            self.calls += 1
            self.peak = max(self.peak, len(self.held))
            return self.tokens

    async def release(self, token: int) -> None:
        async with self.cond:
            if self.held.pop(token, None) is not None:
                self.cond.notify()

    def stats(self) -> dict[str, int]:
        return {"limit": self.limit, "calls": self.calls, "peak": self.peak, "expired": self.expired}


class ClusterLimitedBackend:
    """A worker's backend whose calls each hold one of the cluster's model slots."""

    def __init__(self, backend, slots) -> None:
        self.backend, self.slots = backend, slots

    async def acomplete(self, request):
        token = await self.slots.acquire.remote()
        try:
            return await self.backend.acomplete(request)
        finally:
            self.slots.release.remote(token)

    def complete(self, request):
        import ray

        token = ray.get(self.slots.acquire.remote())
        try:
            return self.backend.complete(request)
        finally:
            self.slots.release.remote(token)

    def __getattr__(self, name: str):
        return getattr(self.backend, name)


def _set_aside(folder: Path) -> None:
    """A run folder left by a worker lost mid-attempt (shared --out): keep it, out of the retry's way."""
    if folder.exists():
        n = 1
        while (aside := folder.with_name(f"{folder.name}.lost{n}")).exists():
            n += 1
        folder.rename(aside)


def attempt_on_worker(task_data: dict, attempt: int, cfg_data: dict, ledger, key: str, slots=None,
                      shared_out: str | None = None) -> tuple[dict, bytes]:
    """Runs on a Ray worker: one attempt on a fresh local desk; returns its result and run folder (tar).

    With `shared_out` the run folder is written there (a path every node
    sees) and no archive is returned.
    """
    import ray

    from deskpilot.agent.config.spec import RunSpec
    from deskpilot.eval.runner import attempt_dir
    from deskpilot.agent.desk.pool import build_desk

    worker = f"{socket.gethostname()}:{os.getpid()} (node {ray.get_runtime_context().get_node_id()[:8]})"
    ray.get(ledger.started.remote(key, worker))
    task = SuiteTask.model_validate(task_data)
    cfg = RunSpec.model_validate(cfg_data)
    with tempfile.TemporaryDirectory(prefix="deskpilot-ray-") as tmp:
        out = Path(shared_out or tmp)
        started = time.monotonic()
        try:
            if not out.is_dir():
                raise DeskpilotError(f"--out {out} is not visible on {socket.gethostname()}: "
                                     f"--ray-shared-out needs a path every node mounts")
            if shared_out:
                _set_aside(attempt_dir(out, task.id, attempt))
            desk = build_desk(task_spec(task), fresh_shares=True)
        except (DeskpilotError, OSError) as err:
            result = failed_attempt(task, attempt, out if out.is_dir() else Path(tmp), err, time.monotonic() - started)
        else:
            backend = cfg.server_backend() if cfg.backend.base_url else task_backend(task, None)
            if slots is not None and cfg.backend.base_url:
                backend = ClusterLimitedBackend(backend, slots)
            try:
                result = asyncio.run(run_attempt(task, attempt, out, cfg, desk, backend,
                                                 desk_s=time.monotonic() - started))
            finally:
                desk.close()
                backend.close()
        if result.run_dir:
            finish_run(out / result.run_dir)
        result.worker = worker
        if shared_out:
            return result.model_dump(mode="json"), b""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            if (out / "runs").is_dir():
                tar.add(out / "runs", arcname="runs")
    return result.model_dump(mode="json"), buf.getvalue()


class _Ledger:
    """Named actor: how many times each attempt started, and on which worker."""

    def __init__(self) -> None:
        self.runs: dict[str, list[str]] = {}

    def started(self, key: str, worker: str) -> int:
        self.runs.setdefault(key, []).append(worker)
        return len(self.runs[key])

    def get(self, key: str) -> list[str]:
        return self.runs.get(key, [])


def _auto_address() -> str:
    """What `ray.init(address='auto')` would use: RAY_ADDRESS, else the cluster `ray start` left on this node."""
    named = os.environ.get("RAY_ADDRESS")
    if named:
        return named
    try:
        found = (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").read_text().split()
    except OSError:
        found = []
    if not found:
        raise ConfigError("--ray auto found no Ray cluster on this node: start one with `ray start --head`, "
                          "or give --ray HOST:PORT")
    return found[0]


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when nothing listens at HOST:PORT (Ray itself retries for long)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except ValueError:
        raise ConfigError(f"--ray takes 'auto' or HOST:PORT of a Ray cluster's head, got {address!r}") from None
    except OSError as err:
        raise ConfigError(f"no Ray cluster answers at {address} ({err.strerror or err}): "
                          f"start one with `ray start --head`, or use --ray auto") from None


def _unpack(data: bytes, out: Path) -> None:
    """Unpack a run folder sent back by a worker: plain files and folders inside `out` only."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 (Debian 12's 3.11.2 lacks it)
            tar.extractall(out, filter="data")  # refuses absolute paths, links out of the folder, devices
            return
        root = out.resolve()
        members = []
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or (target != root and root not in target.parents):
                raise ConfigError(f"a worker sent back an unsafe archive entry: {member.name!r}")
            members.append(member)
        tar.extractall(out, members=members)


class RayEvaluation:
    """The suite on a Ray cluster; same outputs as the local Evaluation."""

    def __init__(self, suite: Suite, cfg, out: Path, settings: EvalSettings | None = None,
                 progress: Callable[[dict], None] | None = None, address: str = "auto",
                 retries: int = RETRIES, shared_out: bool = False):
        self.suite, self.cfg, self.out = suite, cfg, Path(out).resolve()
        self.shared_out = shared_out  # workers write run folders into --out themselves
        self.settings = settings or EvalSettings()
        self.progress = progress or (lambda e: None)
        self.address, self.retries = address, retries
        self.results: list[AttemptResult] = []

    def _connect(self):
        ray = _ray()
        if not ray.is_initialized():
            _reachable(self.address if self.address != "auto" else _auto_address())
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
                raise ConfigError(f"cannot connect to a Ray cluster at {self.address!r}: {first} "
                                  f"(start one with `ray start --head`)") from None
        return ray

    def run(self) -> dict[str, Any]:
        ray = self._connect()
        self.out.mkdir(parents=True, exist_ok=True)
        todo, self.results = plan(self.suite, self.settings.repeat, self.out, self.settings.resume)
        planned = len(todo) + len(self.results)
        ledger = ray.remote(num_cpus=0)(_Ledger).remote()
        slots = None
        if self.cfg.backend.base_url:  # one cap on model calls for the whole cluster
            limit = self.settings.model_concurrency or self.settings.parallel
            slots = ray.remote(num_cpus=0)(ModelSlots).remote(limit, float(self.cfg.policy.step_timeout_s) + 30.0)
        shared = str(self.out) if self.shared_out else None
        remote = ray.remote(attempt_on_worker).options(num_cpus=1, max_retries=self.retries, retry_exceptions=False)
        cfg_data = self.cfg.model_dump(mode="json")
        self.progress({"event": "plan", "planned": planned, "done": len(self.results), "todo": len(todo)})
        started = time.monotonic()
        waiting = list(todo)
        running: dict[Any, tuple[SuiteTask, int]] = {}
        interrupted = False
        try:
            while waiting or running:
                while waiting and len(running) < self.settings.parallel:
                    task, attempt = waiting.pop(0)
                    if (skipped := skipped_attempt(task, attempt)) is not None:  # listed, never sent to a worker
                        append_result(self.out, skipped)
                        self.results.append(skipped)
                        self.progress({"event": "result", "result": skipped})
                        continue
                    ref = remote.remote(task.model_dump(mode="json"), attempt, cfg_data, ledger, f"{task.id}~{attempt}",
                                        slots, shared)
                    running[ref] = (task, attempt)
                    self.progress({"event": "start", "task": task.id, "attempt": attempt})
                done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in done:
                    task, attempt = running.pop(ref)
                    self._collect(ray, ref, task, attempt, ledger, started)
        except KeyboardInterrupt:
            interrupted = True
            for ref in running:
                ray.cancel(ref, force=True)
        finally:
            calls = ray.get(slots.stats.remote()) if slots is not None else None
            for actor in (ledger, slots):
                if actor is not None:
                    ray.kill(actor)
        summary = summarize(self.results, suite=self.suite.name, repeat=self.settings.repeat, planned=planned,
                            interrupted=interrupted, wall_s=round(time.monotonic() - started, 2))
        summary.update(suite_info(self.suite))
        summary["ray"] = {"address": self.address, "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
                          "shared_out": self.shared_out}
        if calls is not None:
            summary["ray"]["model_calls"] = calls
        write_summary(self.out, summary)
        write_index(self.out, self.results, summary)
        self.progress({"event": "summary", "summary": summary})
        return summary

    def _collect(self, ray, ref, task: SuiteTask, attempt: int, ledger, started: float) -> None:
        key = f"{task.id}~{attempt}"
        try:
            data, archive = ray.get(ref)
            result = AttemptResult.model_validate(data)
            if archive:  # nothing to unpack when the worker wrote to the shared --out
                _unpack(archive, self.out)
        except ray.exceptions.RayError as err:  # retries used up, or the task itself failed
            first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
            result = failed_attempt(task, attempt, self.out, DeskpilotError(f"Ray: {first}"), time.monotonic() - started)
        runs = ray.get(ledger.get.remote(key))
        result.tries = max(1, len(runs))
        result.worker = result.worker or (runs[-1] if runs else "")
        append_result(self.out, result)
        self.results.append(result)
        self.progress({"event": "result", "result": result})
