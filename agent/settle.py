"""Waiting after an action until the screen shows its result, and no longer.

The old rule (two equal frames 50 ms apart) cost ~110 ms on every step and
was wrong for an app that paints its reaction later than 50 ms after the
input: two equal frames of the OLD screen looked settled. The rule here:

1. wait for the first change the action causes (X DAMAGE events; frames
   compared where DAMAGE is missing), up to ``first_change_s`` for actions
   that change nothing;
2. then wait until nothing has been drawn for a quiet period (``quiet_s``,
   stretched to twice the longest pause seen between bursts of drawing, so an
   animation running at a frame clock is not cut between two frames);
3. never longer than ``cap_s`` in all (animations, a clock ticking).

Blinking carets and other small areas that change on their own would count
as "the first change" and end step 1 early, so they are ignored: caret-shaped
rectangles (at most 3 px thin and 48 px long), small areas seen changing
twice while nothing was being done (learned between actions: Tk redraws a
whole entry when its caret blinks), and regions the user names. Ignoring only ever makes a wait longer, never shorter.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Callable, Iterable, Literal

from PIL import ImageChops
from pydantic import BaseModel, Field

from deskpilot.perception.damage import Damage, DamageUnavailable, DamageWatcher, Rect
from deskpilot.perception.observation import Observation

CARET_THIN, CARET_LONG = 3, 48
LEARN_MAX_SHARE = 0.01  # only small areas (<= 1% of the screen) are learned as blinkers: a caret, a spinner, a clock
LEARN_KEEP = 32


class SettleSettings(BaseModel):
    """How long to wait for an action's result; seconds."""

    first_change_s: float = Field(default=1.0, ge=0, description="wait at most this long for any change")
    quiet_s: float = Field(default=0.015, gt=0, description="no drawing for this long = settled")
    quiet_max_s: float = Field(default=0.1, gt=0, description="upper bound of the stretched quiet period")
    cap_s: float = Field(default=2.0, ge=0, description="never wait longer in all")
    frame_interval_s: float = Field(default=0.02, gt=0, description="frame-comparison fallback: time between grabs")
    ignore: list[tuple[int, int, int, int]] = Field(default_factory=list, description="x, y, width, height never counted")


class SettleResult(BaseModel):
    """What one wait saw; recorded with the step's action."""

    method: Literal["damage", "frames"]
    changed: bool  # something (not ignored) was drawn after the action
    settled: bool  # ...and then stopped before the cap (False: cap reached, or nothing changed)
    first_change_ms: float | None = None
    wait_ms: float = 0.0
    bursts: int = 0
    ignored: int = 0
    stale_before_act: bool = False  # the screen changed between the frame the model saw and the action


def caret_shaped(rect: Rect) -> bool:
    return min(rect.width, rect.height) <= CARET_THIN and max(rect.width, rect.height) <= CARET_LONG


class _Ignore:
    """User regions + caret shapes + small areas that blink on their own.

    An area that changed while nothing was being done is remembered with the
    contents it showed (a hash of its pixels). Later damage of exactly that
    area is ignored only if it shows one of those contents again: a caret
    blinking on and off repeats two states, while typing into the same entry
    shows new ones and still counts as a change.
    """

    def __init__(self, regions: Iterable[tuple[int, int, int, int]], screen: tuple[int, int] = (1920, 1080),
                 region_hash: Callable[[Rect], bytes] | None = None) -> None:
        self.regions = [Rect(*r) for r in regions]
        self.states: dict[Rect, set[bytes]] = {}
        self.max_area = max(64 * 64, int(screen[0] * screen[1] * LEARN_MAX_SHARE))
        self.region_hash = region_hash

    def learn_idle(self, rects: Iterable[Rect]) -> None:
        if self.region_hash is None:
            return
        for rect in set(rects):
            if rect.area <= self.max_area and not caret_shaped(rect):
                states = self.states.setdefault(rect, set())
                if len(states) < 4:
                    states.add(self.region_hash(rect))
        while len(self.states) > LEARN_KEEP:
            self.states.pop(next(iter(self.states)))

    def fixed(self, rect: Rect) -> bool:
        """Ignored whatever it shows (caret shape, user region)."""
        return caret_shaped(rect) or any(rect.within(region) for region in self.regions)

    def __call__(self, rect: Rect) -> bool:
        if self.fixed(rect):
            return True
        states = self.states.get(rect)
        return bool(states) and len(states) >= 2 and self.region_hash(rect) in states


class Settler:
    """Per-run waiter: ``frame_taken()`` after each capture, ``before_act()`` and ``after_act()`` around each action."""

    def __init__(self, grab: Callable[[], Observation], watcher: DamageWatcher | None,
                 settings: SettleSettings | None = None, region_hash: Callable[[Rect], bytes] | None = None) -> None:
        self.grab = grab
        self.watcher = watcher
        self.settings = settings or SettleSettings()
        screen = watcher.size if watcher is not None else (1920, 1080)
        self.ignore = _Ignore(self.settings.ignore, screen, region_hash)
        self._changed_since_frame = False
        self._reference: Observation | None = None
        self._acted_at = 0.0

    @classmethod
    def open(cls, capturer, settings: SettleSettings | None = None, *, display: str | None = None,
             xauthority=None, use_damage: bool = True) -> "Settler":
        """DAMAGE-based when the display has it (and ``use_damage``), frame comparison otherwise.

        ``capturer`` is a perception.Capturer (its display is watched unless ``display`` is given).
        """
        display = display or getattr(capturer, "display", None)
        xauthority = xauthority or getattr(capturer, "_xauthority", None)
        watcher = None
        if use_damage and display:
            try:
                watcher = DamageWatcher(display, xauthority)
            except DamageUnavailable:
                watcher = None
        return cls(capturer.grab, watcher, settings, region_hash=_region_hasher(capturer))

    @property
    def method(self) -> str:
        return "damage" if self.watcher is not None else "frames"

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    # -- around a step -------------------------------------------------------------
    def frame_taken(self) -> None:
        """Call right after grabbing the frame the model will see: what changed before it is not news."""
        if self.watcher is not None:
            self.ignore.learn_idle(d.rect for d in self.watcher.poll())
        self._changed_since_frame = False

    def before_act(self) -> None:
        """Call right before performing an action: notes whether the frame went stale meanwhile."""
        self._acted_at = time.monotonic()
        if self.watcher is not None:
            idle = [d.rect for d in self.watcher.poll()]
            self.ignore.learn_idle(idle)
            self._changed_since_frame = any(not self.ignore(r) for r in idle)
        else:
            self._reference = self.grab()

    def after_act(self) -> SettleResult:
        """Block until the action's result is on screen (see the module docstring)."""
        if self.watcher is not None:
            result = self._wait_damage()
        else:
            result = self._wait_frames()
        result.stale_before_act = self._changed_since_frame
        return result

    async def aafter_act(self) -> SettleResult:
        return await asyncio.to_thread(self.after_act)

    # -- the two ways of seeing changes ---------------------------------------------------
    def _wait_damage(self) -> SettleResult:
        s, start = self.settings, self._acted_at or time.monotonic()
        cap_at, first_at = start + s.cap_s, start + s.first_change_s
        first: float | None = None
        last = gap = 0.0
        bursts = ignored = 0
        while True:
            now = time.monotonic()
            quiet = min(s.quiet_max_s, max(s.quiet_s, 2 * gap))
            until = (last + quiet) if first is not None else first_at
            if now >= cap_at or now >= until:
                break
            events = self.watcher.poll(min(until, cap_at) - now)
            counted = [d for d in events if not self.ignore(d.rect)]
            ignored += len(events) - len(counted)
            if counted:
                when = counted[-1].when
                if first is None:
                    first = counted[0].when
                else:
                    gap = max(gap, counted[0].when - last)
                last = when
                bursts += 1
        end = time.monotonic()
        settled = first is not None and end < cap_at
        return SettleResult(
            method="damage", changed=first is not None, settled=settled,
            first_change_ms=None if first is None else round((first - start) * 1000, 2),
            wait_ms=round((end - start) * 1000, 2), bursts=bursts, ignored=ignored,
        )

    def _changed_box(self, a: Observation, b: Observation) -> list[Rect]:
        if a.size != b.size:
            return [Rect(0, 0, *b.size)]
        if a.image.tobytes() == b.image.tobytes():
            return []
        box = ImageChops.difference(a.image, b.image).getbbox()
        return [Rect(box[0], box[1], box[2] - box[0], box[3] - box[1])] if box else []

    def _wait_frames(self) -> SettleResult:
        s, start = self.settings, self._acted_at or time.monotonic()
        cap_at, first_at = start + s.cap_s, start + s.first_change_s
        previous = self._reference or self.grab()
        first: float | None = None
        bursts = ignored = 0
        while time.monotonic() < (cap_at if first is not None else min(cap_at, first_at)):
            time.sleep(s.frame_interval_s if first is None else s.quiet_s)
            frame = self.grab()
            rects = self._changed_box(previous, frame)
            counted = [r for r in rects if not self.ignore(r)]
            ignored += len(rects) - len(counted)
            previous = frame
            if counted:
                bursts += 1
                first = first if first is not None else frame.timestamp
            elif first is not None:
                break  # changed, then two frames a quiet period apart agree
        end = time.monotonic()
        settled = first is not None and end < cap_at
        self._reference = None
        return SettleResult(
            method="frames", changed=first is not None, settled=settled,
            first_change_ms=None if first is None else round((first - start) * 1000, 2),
            wait_ms=round((end - start) * 1000, 2), bursts=bursts, ignored=ignored,
        )


def _region_hasher(capturer) -> Callable[[Rect], bytes] | None:
    sct = getattr(capturer, "mss", None)
    if sct is None:
        return None

    def region_hash(rect: Rect) -> bytes:
        shot = sct.grab({"left": rect.x, "top": rect.y, "width": max(1, rect.width), "height": max(1, rect.height)})
        return hashlib.blake2b(shot.raw, digest_size=16).digest()

    return region_hash


def wait_quiet(watcher: DamageWatcher, *, quiet_s: float = 0.2, cap_s: float = 5.0) -> bool:
    """Block until nothing is drawn for ``quiet_s`` (start-up readiness); False at the cap.

    Caret-shaped areas are ignored so a blinking cursor does not hold it up.
    """
    start = time.monotonic()
    last = start
    while True:
        now = time.monotonic()
        if now - last >= quiet_s:
            return True
        if now - start >= cap_s:
            return False
        events = watcher.poll(min(last + quiet_s, start + cap_s) - now)
        if any(not caret_shaped(d.rect) for d in events):
            last = time.monotonic()
