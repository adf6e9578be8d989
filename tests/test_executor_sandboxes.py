"""Executor end to end: a real xterm writes a file; two sandboxes never cross-talk."""

from __future__ import annotations

import shutil
import time

import pytest

from deskpilot.actions.executor import Executor
from deskpilot.actions.models import Click, Key, Type
from apps import launch_probe
from deskpilot.sandbox import Sandbox

SIZE = (1024, 768)


def _wait_file(path, expected: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(encoding="utf-8") == expected:
            break
        time.sleep(0.05)
    return path.read_text(encoding="utf-8") if path.exists() else "<missing>"


@pytest.mark.skipif(shutil.which("xterm") is None, reason="xterm is not installed")
def test_xterm_command_writes_file_in_sandbox_home():
    with Sandbox(size=SIZE, isolation="bwrap", network=False) as sb, Executor.for_sandbox(sb) as ex:
        sb.launch([shutil.which("xterm"), "-geometry", "80x10+20+20", "-T", "dp-xterm"])
        sb.wait_for_window("dp-xterm", timeout=10)
        time.sleep(0.3)  # the shell prompt starts after the window maps
        ex.perform(Click(x=200, y=80))
        ex.perform(Type(text="printf 'hello café <ü> 你好\\n' > ~/out.txt\n"))
        assert _wait_file(sb.home / "out.txt", "hello café <ü> 你好\n") == "hello café <ü> 你好\n"


def test_two_sandboxes_do_not_cross_talk():
    with Sandbox(size=SIZE, isolation="bwrap", network=False) as one, \
            Sandbox(size=SIZE, isolation="bwrap", network=False) as two:
        p1, p2 = launch_probe(one, title="probe-A"), launch_probe(two, title="probe-B")
        assert p1.widgets["e1"] == p2.widgets["e1"]  # same layout: same screen points
        with Executor.for_sandbox(one) as ex1, Executor.for_sandbox(two) as ex2:
            m1, m2 = p1.log.mark(), p2.log.mark()
            x, y = p1.point("e1", 20, 5)
            ex1.perform(Click(x=x, y=y))
            ex1.perform(Type(text="only in A"))
            ex1.perform(Key(keys="ctrl+a"))
            p1.wait_content("e1", "only in A", m1)
            ex2.perform(Click(x=x, y=y))
            ex2.perform(Type(text="only in B"))
            p2.wait_content("e1", "only in B", m2)
            time.sleep(0.2)
            assert p1.content()["e1"] == "only in A"
            assert p2.content()["e1"] == "only in B"
            assert not [e for e in p2.log.since(m2) if e["ev"] == "select_all"]
            assert len([e for e in p1.log.since(m1) if e["ev"] == "press"]) == 1
            assert len([e for e in p2.log.since(m2) if e["ev"] == "press"]) == 1
