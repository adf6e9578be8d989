"""Ctrl-C always ends a run: a cancellation that meets a model reply arriving at the same moment is not lost.

On Python 3.11, ``asyncio.wait_for`` returns the inner result when it is
cancelled in the same loop turn as the inner call finishes, and the
cancellation is gone: `deskpilot run` then went on with its steps after
Ctrl-C (seen in CI as a run that did not stop within 60 s of SIGINT). The
backend here replies and cancels the run in that same turn.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from deskpilot.agent.desk.session import SessionSpec, app_from_command, open_sandbox, wait_until_ready
from deskpilot.agent.loop.agent import Agent
from deskpilot.model_backend import ScriptedBackend
from deskpilot.perception import Capturer

WAIT = "Nothing to do yet.\n<|begin_of_box|>WAIT()<|end_of_box|>"


class CancelsAsItReplies(ScriptedBackend):
    """Replies at once and, in the same loop turn, cancels the task that runs the agent (as Ctrl-C does)."""

    def __init__(self, replies, target: list[asyncio.Task]):
        super().__init__(replies)
        self.target = target

    async def acomplete(self, request):
        asyncio.get_running_loop().call_soon(self.target[0].cancel)
        return self.complete(request)


def test_a_cancellation_arriving_with_the_reply_stops_the_run(tmp_path):
    main: list[asyncio.Task] = []
    backend = CancelsAsItReplies([WAIT] * 3, main)
    sb, _ = open_sandbox(SessionSpec(size=(640, 400), apps=[app_from_command("xterm")]))
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer)
            with Agent(backend, sb, run_dir=tmp_path / "run", capturer=capturer) as agent:

                async def drive():
                    current = asyncio.current_task()
                    assert current is not None
                    main.append(current)
                    return await agent.arun("wait")

                with pytest.raises(asyncio.CancelledError):
                    asyncio.run(drive())
        finally:
            capturer.close()
    assert backend.calls == 1, "the run went on asking the model after it was cancelled"
    records = [json.loads(line) for line in (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()]
    end = [r for r in records if r.get("kind") == "end"]
    assert len(end) == 1 and end[0]["status"] == "STOPPED" and end[0]["reason"] == "interrupted", end
