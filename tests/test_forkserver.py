"""Input workers forked from the pre-imported fork server: same worker, cheaper start, nothing leaked."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from apps import launch_probe
from deskpilot.actions import forkserver
from deskpilot.actions.errors import ExecutorError
from deskpilot.actions.executor import Executor
from deskpilot.actions.models import Click, Type
from deskpilot.sandbox import Sandbox

from conftest import kill_owner_after_report


@pytest.fixture(scope="module")
def sb():
    with Sandbox(size=(800, 600)) as box:
        yield box


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def server_cmdline(server) -> list[str]:
    return psutil.Process(server.proc.pid).cmdline()


def test_worker_is_a_fork_of_the_server_and_acts(sb):
    probe = launch_probe(sb, title="fork-probe")
    with Executor.for_sandbox(sb) as ex:
        server = forkserver._server
        assert server is not None and server.alive()
        worker = psutil.Process(ex.pid)
        assert worker.ppid() == server.proc.pid  # forked, not a fresh interpreter
        assert worker.cmdline() == server_cmdline(server)  # no exec: the server's pre-imported image
        x, y = probe.point("e1", 5, 5)
        mark = probe.log.mark()
        ex.perform(Click(x=x, y=y))
        ex.perform(Type(text="ok ü"))
        probe.log.wait_for(lambda e: e["ev"] == "content" and e.get("e1") == "ok ü", mark)
        pid = ex.pid
    assert _gone(pid)  # stdin closed: it exits, the server reaps it


def test_a_dead_worker_is_reported_and_a_dead_server_restarted(sb):
    with Executor.for_sandbox(sb) as ex:
        old_server = forkserver._server.proc.pid
        os.kill(ex.pid, signal.SIGKILL)
        assert _gone(ex.pid)
        with pytest.raises(ExecutorError, match="died .exited.; the next action restarts it"):
            ex.perform(Click(x=5, y=5))
        os.kill(old_server, signal.SIGKILL)  # the next worker needs a new server
        ex.perform(Click(x=6, y=6))
        assert ex.alive and forkserver._server.proc.pid != old_server
        assert psutil.Process(ex.pid).ppid() == forkserver._server.proc.pid


def test_disabled_by_the_environment(sb, monkeypatch):
    monkeypatch.setenv("DESKPILOT_INPUT_FORKSERVER", "0")
    with Executor.for_sandbox(sb) as ex:
        assert psutil.Process(ex.pid).ppid() == os.getpid()  # a fresh interpreter, our child
        ex.perform(Click(x=5, y=5))


def test_without_a_fork_server_workers_are_fresh_interpreters_and_it_is_tried_once(sb, monkeypatch):
    tries = []

    def cannot_start():
        tries.append(1)
        raise OSError("the input fork server did not start")

    monkeypatch.setattr(forkserver, "_server", None)
    monkeypatch.setattr(forkserver, "_failed", 0)
    monkeypatch.setattr(forkserver, "ForkServer", cannot_start)
    for _ in range(2):
        with Executor.for_sandbox(sb) as ex:
            assert psutil.Process(ex.pid).ppid() == os.getpid()
            ex.perform(Click(x=5, y=5))
    assert tries == [1]


OWNER = """
import json, sys, time
from deskpilot.sandbox import Sandbox
from deskpilot.actions.executor import Executor
from deskpilot.actions import forkserver
sb = Sandbox(size=(320, 240))
workers = [Executor.for_sandbox(sb) for _ in range(3)]
print(json.dumps({"server": forkserver._server.proc.pid, "workers": [w.pid for w in workers]}), flush=True)
time.sleep(60)
"""


def test_sigkill_of_the_owner_takes_server_and_workers_down():
    info = kill_owner_after_report(OWNER)
    for pid in [info["server"], *info["workers"]]:
        assert _gone(pid), f"process {pid} outlived its SIGKILLed owner"
