"""Run a blocking call in a daemon thread and await it, without tying the event loop's exit to it.

``asyncio.to_thread`` uses the loop's default executor, which ``asyncio.run``
joins on exit: a step time limit that gives up on a slow call would still wait
for it. A daemon thread per call is abandoned cleanly instead (its result is
dropped), so the limit is what the caller waits.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (timeout or cancel)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def in_daemon_thread(fn: Callable[..., T], *args: Any, name: str = "deskpilot-worker") -> T:
    """Await ``fn(*args)`` run in a fresh daemon thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def work() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(_settle, future, result, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future
