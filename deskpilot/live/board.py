"""`deskpilot eval --live`: one local page with every running attempt's desktop in a grid.

A `LiveBoard` is a `LiveServer` (same token, same local-only server, same
headers as the single-run page) holding one `Screen` per running attempt.
It reads the evaluation's progress events: `start` opens a tile, `desk`
hands it the pooled desk the attempt runs on (frames come from that desk's
display, through a capture connection of their own), the loop's events
(`loop_event`) fill in step, thought and action, the loop's `end` stops the
tile's grabbing, and `result` gives the tile its final status; the tile
stays in the grid for `linger_s` seconds and then moves to the finished list.

Grabbing costs CPU per tile, so the board shares a frame budget between the
running tiles (at most `fps` each, at least 1), and grabs only while a page
is polling.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from deskpilot.live.server import NOT_FOUND, LiveServer, Reply, Screen, page

TILE_WIDTH = 640  # tiles are small: smaller JPEGs, same aspect


class _Tile:
    def __init__(self, number: int, task: str, attempt: int, screen: Screen):
        self.number, self.task, self.attempt, self.screen = number, task, attempt, screen
        self.result: dict[str, Any] | None = None
        self.ended_at: float | None = None

    def view(self) -> dict[str, Any]:
        data = dict(self.screen.status(), id=self.number, task=self.task, attempt=self.attempt)
        if self.result is not None:
            data.update(self.result)
        return data


class LiveBoard(LiveServer):
    """Many screens on one page; call it with the evaluation's progress events."""

    def __init__(self, port: int = 0, fps: float = 5.0, host: str = "127.0.0.1", *, frame_budget: float = 20.0,
                 linger_s: float = 5.0, keep_finished: int = 200):
        super().__init__(port, fps, host)
        self.frame_budget, self.linger_s = frame_budget, linger_s
        self._lock = threading.Lock()
        self._tiles: dict[int, _Tile] = {}
        self._by_key: dict[str, _Tile] = {}
        self._finished: deque[dict[str, Any]] = deque(maxlen=keep_finished)
        self._counts = {"planned": 0, "done": 0, "passed": 0, "failed": 0}
        self._over = False
        self._final_served = False  # a page has read the board after the summary
        self._next = 0
        self._page = page("board.html")

    # -- the evaluation's progress events ------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        key = f"{event.get('task')}~{event.get('attempt')}"
        if kind == "plan":
            with self._lock:
                self._counts.update(planned=event["planned"], done=event["done"])
        elif kind == "start":
            self._open(key, str(event["task"]), int(event["attempt"]))
        elif kind == "desk":
            tile = self._by_key.get(key)
            if tile is not None:
                tile.screen.fps = self._tile_fps()
                tile.screen.attach(event["desk"].sandbox)
        elif kind == "result":
            self._close(event["result"])
        elif kind == "summary":
            with self._lock:
                self._over = True
        if "loop_event" in event:
            tile = self._by_key.get(key)
            if tile is not None:
                tile.screen.publish(event["loop_event"])
                if kind == "end":  # the desk goes back to the pool soon: stop looking at it first
                    tile.screen.detach()

    def _tile_fps(self) -> float:
        with self._lock:
            running = sum(1 for t in self._tiles.values() if t.result is None)
        return max(1.0, min(self.fps, self.frame_budget / max(1, running)))

    def _open(self, key: str, task: str, attempt: int) -> None:
        with self._lock:
            self._next += 1
            tile = _Tile(self._next, task, attempt, Screen(self.fps, watched=self._watched, max_width=TILE_WIDTH))
            self._tiles[tile.number] = tile
            self._by_key[key] = tile

    def _close(self, result: Any) -> None:
        key = f"{result.id}~{result.attempt}"
        final = {"result": "PASS" if result.passed else "FAIL", "status": result.status, "passed": bool(result.passed),
                 "steps": result.steps, "reason": result.reason or "",
                 "checks": f"{result.checks_passed}/{result.checks_total}"}
        with self._lock:
            tile = self._by_key.pop(key, None)
            self._counts["done"] += 1
            self._counts["passed" if result.passed else "failed"] += 1
            self._finished.appendleft(dict(final, task=result.id, attempt=result.attempt))
            if tile is not None:
                tile.result, tile.ended_at = final, time.monotonic()
        if tile is not None:
            tile.screen.detach()

    def stop(self, final_wait_s: float = 2.0) -> None:
        """Stop grabbing and serving; a page still watching first gets the final state (up to `final_wait_s`)."""
        deadline = time.monotonic() + final_wait_s
        while self._watched() and not self._final_served and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            tiles = list(self._tiles.values())
        for tile in tiles:
            tile.screen.detach()
        self.close_server()

    # -- what the page reads ----------------------------------------------------------------
    def board(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            for number in [n for n, t in self._tiles.items() if t.ended_at is not None and now - t.ended_at > self.linger_s]:
                del self._tiles[number]
            tiles = list(self._tiles.values())
            counts = dict(self._counts, running=sum(1 for t in tiles if t.result is None))
            finished, over = list(self._finished), self._over
        self._final_served = self._final_served or over
        return dict(counts, over=over, tiles=[t.view() for t in tiles], finished=finished)

    def route(self, parts: list[str]) -> Reply:
        what = parts[0] if parts else ""
        if what == "":
            return 200, self._page, "text/html; charset=utf-8", {}
        if what == "board.json":
            return 200, json.dumps(self.board()).encode(), "application/json", {}
        if what == "t" and len(parts) >= 3 and parts[2] == "frame.jpg" and parts[1].isdigit():
            with self._lock:
                tile = self._tiles.get(int(parts[1]))
            return tile.screen.frame_reply() if tile is not None else NOT_FOUND
        return NOT_FOUND
