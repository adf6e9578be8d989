"""The accessibility tree as the person saw it when they clicked.

A click's widget can be gone by the time the press is reported and read: a
menu item or a dialog's OK button acts on the release, and the menu or the
dialog closes. So a thread keeps the latest snapshot of the tree, read once
the input has paused (``quiet`` seconds after the last event); the press is
matched against that tree (which still shows the open menu), with the
widget under the pointer asked of the bus at the press itself, and a fresh
snapshot when the kept one does not confirm it (a dialog that opened on its
own). Nothing is read while nobody acts: a big tree (LibreOffice) read every
few seconds would cost a core.
"""

from __future__ import annotations

import threading
from typing import Any

from deskpilot.record.compile import element_target, menu_item_at


class TreeWatcher:
    """Keeps ``latest``: a snapshot of the desk's tree taken after the last pause in the input."""

    def __init__(self, reader, *, quiet: float = 0.25, time_limit: float = 1.0) -> None:
        self.reader = reader
        self.quiet, self.time_limit = quiet, time_limit
        self.latest = None
        self.last_role: str | None = None  # the AT-SPI role under the last press (named or not)
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deskpilot-record-tree", daemon=True)

    def start(self) -> "TreeWatcher":
        self._read()
        self._thread.start()
        return self

    def poke(self) -> None:
        """Input happened: read the tree again once it pauses."""
        self._poke.set()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poke.wait()
            while self._poke.is_set() and not self._stop.is_set():  # wait for a pause in the input
                self._poke.clear()
                self._stop.wait(self.quiet)
            if not self._stop.is_set():
                self._read()

    def _read(self) -> None:
        from deskpilot.perception.a11y import A11yError

        try:
            self.latest = self.reader.snapshot(time_limit=self.time_limit)
        except (A11yError, OSError, ValueError):
            pass  # no tree now (the app is starting, or publishes none): keep the last one

    def fresh(self):
        """A snapshot read now (None if the bus does not answer); also kept as the latest."""
        self._read()
        return self.latest

    def element_at(self, x: int, y: int) -> dict[str, Any] | None:
        """The widget pressed at (x, y) as an element step names it, or None (nothing unique with a name).

        An open menu's item is looked up in the last tree (the menu may close
        before the bus answers); any other widget is asked of the bus now and
        must be one of its kind in the last tree (or in a fresh one).
        """
        from deskpilot.perception.a11y import A11yError

        tree = self.latest
        self.last_role = None
        if tree is not None and (item := menu_item_at(tree, x, y)) is not None:
            self.last_role = item["role"]
            return element_target(item, tree)
        try:
            found = self.reader.element_at(x, y, time_limit=0.5)
            if found is None:
                return None
            self.last_role = str(found.get("role") or "") or None
            if tree is not None and (target := element_target(found, tree)) is not None:
                return target
            return element_target(found, self.reader.snapshot(time_limit=self.time_limit))
        except (A11yError, OSError, ValueError):
            return None
