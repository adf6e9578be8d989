"""A pool of ready desktops: many tasks, each on a fresh sandbox, without waiting for one to start.

Why it lives in the agent layer: a *ready* desktop means its apps are started
and their first window has settled (`session.wait_until_ready`), which needs
capture. A desk is a library Session (``deskpilot.Sandbox``: the same
object a user gets from ``with deskpilot.Sandbox(...)``, with its capturer and
input worker already started). It is used by exactly one task and then closed (reset =
replace): an app's state, its private HOME and /tmp, and (with
``fresh_shares``) its shared folders never reach the next task.

A desk whose display or window manager fails to start (``DeskStartError``:
a machine fault under load, not the task's) is retried on a fresh sandbox up
to ``start_retries`` times; the desk handed out lists those failures, with
their logs, in ``start_failures`` (an evaluation keeps them in the attempt's
run folder), and ``stats["start_failures"]`` counts them.

Bounded: at most ``max`` desks exist at once (idle + starting + in use +
closing). Teardown: ``close()`` (or leaving the ``with`` block, or process
exit) closes every desk, in use or not; if the owner is SIGKILLed, each
sandbox's own reaper process stops its processes and deletes its files (see
``sandbox/core.py``), so nothing is leaked either way.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

from deskpilot.agent.desk.session import AppSpec, Session, SessionSpec, app_from_command
from deskpilot.errors import DeskStartError, SandboxError, UsageError

Desk = Session  # what a pool hands out: a library Session (deskpilot.Sandbox), ready to work on


def build_desk(spec: SessionSpec, *, fresh_shares: bool = False, ready_timeout: float = 60.0,
               executor: bool = True) -> Session:
    """Start one sandbox with its apps and wait until it is ready to be looked at.

    Shares are bound after an app's own read-only binds, so a writable share
    is writable even when an app's file argument lies inside it. With
    ``fresh_shares`` each share is copied into the sandbox's own folder and the
    copy is shown at the share's path (the task's changes stay private, and the
    reaper deletes the copy with the sandbox). The input worker is started
    here too (a fork of the pre-imported fork server, ~10 ms of CPU; see
    actions/forkserver.py), so a warm desk is ready to act at once.
    """
    from deskpilot.agent.desk.session import wait_until_ready
    from deskpilot.perception import Capturer
    from deskpilot.sandbox import Bind, Sandbox

    started = time.monotonic()
    for share in spec.shares:
        if not Path(share).is_dir():
            raise UsageError(f"shared folder {share} does not exist (or is not a folder)")
    if fresh_shares and spec.shares and spec.isolation != "bwrap":
        raise UsageError("fresh (per-task) copies of shared folders need isolation 'bwrap'")
    from deskpilot.agent.desk.apps import plan_binds
    from deskpilot.agent.desk.office import prepare_home

    app_binds = [plan_binds(app.binds, spec.shares) for app in spec.apps]  # the same rules as open_sandbox
    sb = Sandbox(size=(spec.size[0], spec.size[1]), isolation=spec.isolation, network=spec.network, maximize=spec.maximize,
                 accessibility=spec.accessibility, office_gtk3=spec.office_gtk3)
    try:
        from deskpilot.agent.desk.session import start_vnc_for

        start_vnc_for(sb, spec)
        shares: dict[str, Path] = {}
        for n, share in enumerate(spec.shares):
            host = Path(share)
            if fresh_shares:
                host = sb.dir / "shares" / f"{n}-{Path(share).name}"
                shutil.copytree(share, host, symlinks=True)
            shares[str(Path(share))] = host
        # mounted after each app's own binds, so a share (or its copy) is never hidden by a read-only parent
        share_binds = [Bind(host=host, target=Path(inside), writable=True) if fresh_shares
                       else Bind(host=host, writable=True) for inside, host in shares.items()]
        prepare_home(sb.home, [app.argv for app in spec.apps], [str(s) for s in spec.shares])  # no first-start dialogs
        sb.give_to_apps(sb.home / ".config")
        handles = [sb.launch(app.argv, binds=[*own, *share_binds]) for app, own in zip(spec.apps, app_binds)]
        capturer = Capturer(sb)
        worker = None
        try:
            wait_until_ready(sb, capturer, timeout=ready_timeout, handles=handles, has_apps=bool(spec.apps))
            if executor:
                from deskpilot.actions.executor import Executor

                worker = Executor.for_sandbox(sb)
        except BaseException:
            capturer.close()
            raise
    except BaseException:
        sb.close()
        raise
    return Session.adopt(spec, sb, handles, capturer=capturer, executor=worker, shares=shares, share_binds=share_binds,
                         started_s=round(time.monotonic() - started, 3))


def max_starting() -> int:
    """How many desks may start at once: starting is CPU-bound (Xvfb, the apps, the input worker)."""
    return max(2, 2 * (os.cpu_count() or 1))


def make_spec(size: tuple[int, int] = (1280, 800), apps: Sequence[str | AppSpec] = (), *,
              shares: Sequence[str | Path] = (), isolation: Literal["bwrap", "none"] = "bwrap",
              network: bool = False) -> SessionSpec:
    """A SessionSpec from plain command strings (same rules as `--app`) and share folders."""
    resolved = [str(Path(s).resolve()) for s in shares]
    return SessionSpec(size=(int(size[0]), int(size[1])), isolation=isolation, network=network, shares=resolved,
                       apps=[a if isinstance(a, AppSpec) else app_from_command(a, shares=resolved) for a in apps])


class SandboxPool:
    """Keeps ``warm`` desks ready; ``lease()`` hands one out, closing it afterwards.

        with SandboxPool(size=(1280, 800), apps=["xterm"], warm=2, max=8) as pool:
            with pool.lease() as desk:      # ready in milliseconds when one is warm
                ...                         # the desk is closed and replaced after this block
    """

    def __init__(self, size: tuple[int, int] = (1280, 800), apps: Sequence[str | AppSpec] = (), *,
                 warm: int = 1, max: int = 4, shares: Sequence[str | Path] = (), isolation: Literal["bwrap", "none"] = "bwrap",
                 network: bool = False, fresh_shares: bool = False, ready_timeout: float = 60.0,
                 spec: SessionSpec | None = None, builders: int | None = None,
                 start_gate: threading.Semaphore | None = None, start_retries: int = 2):
        if max < 1:
            raise UsageError(f"a pool needs max >= 1, got {max}")
        if not 0 <= warm <= max:
            raise UsageError(f"warm must be between 0 and max ({max}), got {warm}")
        self.spec = spec or make_spec(size, apps, shares=shares, isolation=isolation, network=network)
        self.max, self.fresh_shares, self.ready_timeout = max, fresh_shares, ready_timeout
        self.start_retries = start_retries
        self.start_failures = 0  # desks whose display or window manager failed to start (retried)
        self._warm = warm
        # desks starting at once (shared by pools): 32 Pythons importing at once starve each other
        self._gate = start_gate or threading.BoundedSemaphore(max_starting())
        self._cond = threading.Condition()
        self._idle: deque[Desk] = deque()
        self._live: set[int] = set()  # id() of every desk not yet closed, idle or leased
        self._desks: dict[int, Desk] = {}
        self._starting = self._warming = self._closing = 0
        self._closed = False
        self._error: BaseException | None = None
        self.started = 0  # desks built so far (for tests and stats)
        self._threads = [threading.Thread(target=self._fill, name=f"pool-warm-{n}", daemon=True)
                         for n in range(builders or min(4, warm) or 0)]
        for thread in self._threads:
            thread.start()
        self._atexit = weakref.WeakMethod(self.close)
        atexit.register(_close_at_exit, self._atexit)

    # -- counting ----------------------------------------------------------------
    def _total(self) -> int:
        return len(self._live) + self._starting + self._closing

    @property
    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"idle": len(self._idle), "leased": len(self._live) - len(self._idle),
                    "starting": self._starting, "closing": self._closing, "started": self.started,
                    "start_failures": self.start_failures}

    def set_warm(self, warm: int) -> None:
        """Change how many idle desks to keep (0: build only on demand)."""
        with self._cond:
            self._warm = max(0, min(warm, self.max))
            surplus = [self._idle.pop() for _ in range(len(self._idle) - self._warm)] if len(self._idle) > self._warm else []
            self._cond.notify_all()
        for desk in surplus:  # closing takes a moment: not on the caller's (maybe an event loop's) time
            threading.Thread(target=self._discard, args=(desk,), name="pool-close", daemon=True).start()

    # -- building ----------------------------------------------------------------
    def _build_retrying(self) -> Desk:
        """build_desk, again on a fresh sandbox when the display or window manager failed to start."""
        failures: list[DeskStartError] = []
        while True:
            try:
                with self._gate:
                    desk = build_desk(self.spec, fresh_shares=self.fresh_shares, ready_timeout=self.ready_timeout)
            except DeskStartError as exc:
                failures.append(exc)
                with self._cond:
                    self.start_failures += 1
                if len(failures) > self.start_retries or self._closed:
                    exc.failures = failures
                    raise
                continue
            desk.start_failures = failures
            return desk

    def _build(self) -> Desk:
        try:
            desk = self._build_retrying()
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            self.started += 1
            if self._closed:
                closed_meanwhile = True
            else:
                closed_meanwhile = False
                self._live.add(id(desk))
                self._desks[id(desk)] = desk
            self._cond.notify_all()
        if closed_meanwhile:
            desk.close()
            raise SandboxError("the sandbox pool is closed")
        return desk

    def _fill(self) -> None:
        """Warm-up thread: build while fewer than `warm` desks are idle or starting."""
        while True:
            with self._cond:
                while not self._closed and (self._error is not None or len(self._idle) + self._warming >= self._warm
                                            or self._total() >= self.max):
                    self._cond.wait()
                if self._closed:
                    return
                self._starting += 1
                self._warming += 1
            try:
                desk = self._build()
            except BaseException as exc:  # remembered; acquire() raises it, warming pauses
                with self._cond:
                    self._warming -= 1
                    if not self._closed:
                        self._error = exc
                    self._cond.notify_all()
                continue
            with self._cond:
                self._warming -= 1
                self._idle.append(desk)
                self._cond.notify_all()

    # -- handing out -------------------------------------------------------------
    def acquire(self, timeout: float | None = None) -> Desk:
        """A ready desk for one task; give it back with `release` (which closes it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxError("the sandbox pool is closed")
                if self._idle:
                    desk = self._idle.popleft()
                    self._cond.notify_all()  # a warm-up thread may build the next one
                    return desk
                if self._error is not None:
                    error, self._error = self._error, None
                    self._cond.notify_all()
                    raise error
                if self._total() < self.max:  # nothing idle: build one here, warm-up goes on too
                    self._starting += 1
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise SandboxError(f"no desktop became free within {timeout:g} s (pool max {self.max})")
                self._cond.wait(left)
        return self._build()  # outside the lock: starting takes ~0.1-1 s

    def release(self, desk: Desk) -> None:
        """Give a desk back: it is closed (never reused) and a fresh one is warmed in its place."""
        self._discard(desk)

    def _discard(self, desk: Desk) -> None:
        with self._cond:
            if id(desk) not in self._live:
                return
            self._live.discard(id(desk))
            self._desks.pop(id(desk), None)
            self._closing += 1
        try:
            desk.close()
        finally:
            with self._cond:
                self._closing -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def lease(self, timeout: float | None = None) -> Iterator[Desk]:
        desk = self.acquire(timeout)
        try:
            yield desk
        finally:
            self.release(desk)

    @contextlib.asynccontextmanager
    async def alease(self, timeout: float | None = None):
        desk = await asyncio.to_thread(self.acquire, timeout)
        try:
            yield desk
        finally:
            await asyncio.to_thread(self.release, desk)

    # -- teardown ----------------------------------------------------------------
    def close(self) -> None:
        """Close every desk, idle or in use; wait for desks still starting."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)
        with self._cond:
            desks = list(self._desks.values())
            self._idle.clear()
        for desk in desks:
            self._discard(desk)
        with self._cond:
            self._cond.wait_for(lambda: self._starting == 0 and self._closing == 0, timeout=60)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SandboxPool(warm={self._warm}, max={self.max}, {self.stats})"


def _close_at_exit(ref: weakref.WeakMethod) -> None:
    close = ref()
    if close is not None:
        close()
