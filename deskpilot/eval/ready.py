"""A task's own readiness (``ready:`` in a suite; an OSWorld task's opened file): its window, then stillness."""

from __future__ import annotations

import time


def wait_ready(desk, ready) -> None:
    """A task's own readiness: its window is up, then nothing is drawn for `quiet` seconds.

    X DAMAGE events (a blinking caret aside), not frames grabbed and compared
    every 0.1 s: with many desks starting at once those grabs were a few
    percent of the eval process's CPU. Frames where the display has no DAMAGE.
    """
    from deskpilot.agent.desk.screens import same_frame
    from deskpilot.agent.desk.settle import wait_quiet
    from deskpilot.errors import SandboxError
    from deskpilot.perception.damage import DamageUnavailable, DamageWatcher

    deadline = time.monotonic() + ready.timeout
    desk.sandbox.wait_for_window(ready.window, timeout=ready.timeout)
    still = f"the screen never stayed still for {ready.quiet:g} s after {ready.window!r} appeared"
    try:
        with DamageWatcher.for_sandbox(desk.sandbox) as watcher:
            if not wait_quiet(watcher, quiet_s=ready.quiet, cap_s=max(0.0, deadline - time.monotonic())):
                raise SandboxError(still)
            return
    except DamageUnavailable:
        pass
    last, since = desk.capturer.grab().image, time.monotonic()
    while time.monotonic() - since < ready.quiet:
        if time.monotonic() > deadline:
            raise SandboxError(still)
        time.sleep(0.1)
        frame = desk.capturer.grab().image
        if not same_frame(last, frame):
            last, since = frame, time.monotonic()
