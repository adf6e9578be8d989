"""Watching a run: a live page in the browser (`--live`) and a video of the screen (`--record`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

from deskpilot.live.server import LiveView

__all__ = ["LiveView", "Watchers", "watch"]


class Watchers:
    """Several watchers (a live page, a recorder) behind the one interface a workflow run drives:
    `attach(sandbox)` when a desktop opens, `detach()` before it closes, `publish(event)`."""

    def __init__(self, *sinks: Any):
        self.sinks = [s for s in sinks if s is not None]

    def attach(self, sandbox) -> None:
        for sink in self.sinks:
            sink.attach(sandbox)

    def detach(self) -> None:
        for sink in self.sinks:
            sink.detach()

    def publish(self, event: Any) -> None:
        for sink in self.sinks:
            sink.publish(event)


@contextlib.contextmanager
def watch(sandbox, *, live: int | None = None, record: Path | None = None,
          say: Callable[[str], None] = print, handover=None) -> Iterator[Callable[[Any], None]]:
    """Start what was asked for on `sandbox`; yield one callback for the loop's events; stop it all."""
    view = recorder = None
    try:
        if live is not None:
            view = LiveView(port=live, handover=handover).start()
            view.attach(sandbox)
            say(f"live view: {view.url}")
        if record is not None:
            from deskpilot.live.record import Recorder

            recorder = Recorder(record)
            recorder.attach(sandbox)

        def publish(event: Any) -> None:
            for sink in (view, recorder):
                if sink is not None:
                    sink.publish(event)

        yield publish
    finally:
        if recorder is not None:
            written = recorder.close()
            if written is not None:
                say(f"video: {written} ({recorder.frames} frames)")
        if view is not None:
            view.finish(say=say)  # a watching page keeps the final screen and result a few seconds
