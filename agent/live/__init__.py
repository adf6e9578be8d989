"""Watching a run: a live page in the browser (`--live`) and a video of the screen (`--record`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

from deskpilot.agent.live.server import LiveView

__all__ = ["LiveView", "watch"]


@contextlib.contextmanager
def watch(sandbox, *, live: int | None = None, record: Path | None = None,
          say: Callable[[str], None] = print) -> Iterator[Callable[[Any], None]]:
    """Start what was asked for on `sandbox`; yield one callback for the loop's events; stop it all."""
    view = recorder = None
    try:
        if live is not None:
            view = LiveView(port=live).start()
            view.attach(sandbox)
            say(f"live view: {view.url}")
        if record is not None:
            from deskpilot.agent.live.record import Recorder

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
            view.stop()
