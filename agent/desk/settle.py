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

All three count from the END of the action (typing a long text takes a while).

The quiet period also learns, per run: when an app is seen drawing again
(beyond carets and small areas) shortly after a wait ended (X server
timestamps, so however late it is noticed), the gap it left is the quiet
period that app needs: later waits use it (with a margin; at most
``quiet_max_s``). Measured on real apps (bench/settle_tuning.py): xterm and
Tk finish drawing within a millisecond, GTK dialogs and command output can
pause 15-40 ms between bursts.

Blinking carets would count as "the first change" and end step 1 before a
late reaction. So caret-shaped rectangles (at most 3 px thin and 48 px long:
GTK's caret) and regions the user names never count, and a SMALL area (at
most 1% of the screen: Tk redraws a whole entry when its caret blinks) is
only a tentative change, which does not end step 1 (the wait goes on to
``first_change_s`` or a larger change, so a small late reaction such as a
label or a tooltip is still seen, at the cost of the full wait), when:
- it changes later than ``prompt_s`` after the action, or
- the action was a pointer action and the area is not near its point (a
  checkbox ticks under the pointer; an entry's caret blinks elsewhere), or
- it blinks: it changed while nothing was being done (or tentatively) since
  an action last redrew it, and now shows a look it showed then (pixels
  hashed; this also holds for areas up to 5% of the screen, as Tk redraws a
  whole Text widget when its caret blinks).
Otherwise what the action draws at once counts. Ignoring only ever makes a
wait longer, never shorter.

Window events (``perception.windows``) say when a reaction is still under
way although nothing is being drawn; only then does the wait go on past its
quiet period, each reason for at most ``pending_s``:
- a click landed in a popup (override-redirect window: a drop-down list, a
  menu): the click may close it, so the wait holds until it is unmapped (a
  popup elsewhere closes at once when clicked away, through the rules below,
  or stays: an overlay). LibreOffice draws the item clicked in its drop-down
  list (or the value chosen) at once and unmaps the list up to ~80 ms later;
  a screenshot taken before showed the list, and the next click was aimed
  at it;
- a window was unmapped: the screen keeps showing it until the window under
  it redraws the area (LibreOffice: 10-30 ms later), so the wait holds until
  drawing arrives there (or the X server painted the whole area as it
  unmapped it, which it may report just before the unmap);
- a window was mapped: hold until it is drawn there; a popup was placed (an
  override-redirect window created or moved with a size, not yet mapped):
  hold until it is mapped;
- the window manager's active window changed: the window gaining the focus
  redraws its look, so hold a quiet period from the change (openbox may draw
  the frames before it sets the property, so no longer than that).
A click whose reaction is small and announces nothing (a pressed look, a
mark) so ends after the ordinary quiet period (15 ms), where it used to wait
``click_quiet_s`` (50 ms, now 0 by default: the setting restores the old
floor). An app that draws a click's effect later than the quiet period and
announces nothing is caught by the learning above: its first such click
teaches a quiet period used after clicks whose drawing is small (not after
every step).

Early frame: a quiet period is idle time, so when the caller passes
``prepare`` (the loop encodes the PNG the model will get), the waiter grabs
the screen DURING the quiet period, late enough for ``prepare`` to finish
before the period ends, and hands that frame over (``take_frame``) if nothing
but carets was drawn after the grab began, up to the moment it is taken:
then the screen still shows exactly that frame (the X server reports every
drawing; one that raced the grab arrives after it and throws the frame away,
which only costs a fresh grab). This hides the capture and the PNG encoding
of the next step behind the wait the step needs anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Callable, Iterable, Literal

from PIL import ImageChops
from pydantic import BaseModel, Field

from deskpilot.actions.models import Click, DoubleClick, Drag, TripleClick
from deskpilot.perception.damage import Damage, DamageUnavailable, DamageWatcher, Rect
from deskpilot.perception.observation import Observation
from deskpilot.perception.windows import WindowEvent, WindowWatch

CARET_THIN, CARET_LONG = 3, 48
SMALL_SHARE = 0.01  # areas up to 1% of the screen may be blinking on their own: a caret, a spinner, a clock
BLINK_SHARE = 0.05  # areas up to 5% are learned as blinkers (Tk redraws a whole Text widget for its caret)
LOOKS_KEPT, AREAS_KEPT = 4, 32
NEAR = 48  # px around a pointer action's point where its own small reactions appear
CLICKS = (Click, DoubleClick, TripleClick, Drag)
EARLY_TRIES = 2  # early frames grabbed per wait at most (a discarded one costs a grab and an encode)
EARLY_MIN_S = 0.002  # never grab before this much quiet


class SettleSettings(BaseModel):
    """How long to wait for an action's result; seconds."""

    first_change_s: float = Field(default=1.0, ge=0, description="wait at most this long for any change")
    quiet_s: float = Field(default=0.015, gt=0, description="no drawing for this long = settled")
    prompt_s: float = Field(default=0.1, ge=0, description="drawing this soon after the action is its doing")
    quiet_max_s: float = Field(default=0.1, gt=0, description="upper bound of the stretched and learned quiet period")
    click_quiet_s: float = Field(default=0.0, ge=0, description="quiet period after a click while only small areas changed "
                                 "(the old fixed rule: 0.05; window events hold the wait where needed instead)")
    pending_s: float = Field(default=0.25, ge=0, description="hold a wait at most this long for each reaction a window "
                             "event announces (a popup closing, a mapped window drawn)")
    watch_windows: bool = Field(default=True, description="hold waits on window events (popups, focus)")
    cap_s: float = Field(default=2.0, ge=0, description="never wait longer in all")
    frame_interval_s: float = Field(default=0.02, gt=0, description="frame-comparison fallback: time between grabs")
    ignore: list[tuple[int, int, int, int]] = Field(default_factory=list, description="x, y, width, height never counted")


class WindowNote(BaseModel):
    """A window event seen during a wait."""

    kind: str  # created, mapped, unmapped, destroyed, active
    popup: bool = False
    at_ms: float = 0.0  # after the action ended


class SettleResult(BaseModel):
    """What one wait saw; recorded with the step's action."""

    method: Literal["damage", "frames"]
    changed: bool  # something (not ignored) was drawn after the action
    settled: bool  # ...and then stopped before the cap (False: cap reached, or nothing changed)
    first_change_ms: float | None = None
    wait_ms: float = 0.0
    bursts: int = 0
    ignored: int = 0
    quiet_ms: float = 0.0  # the quiet period this wait started with (learned from earlier late drawing)
    stale_before_act: bool = False  # the screen changed between the frame the model saw and the action
    quiet_end_ms: float = 0.0  # the quiet period in force when the wait ended
    window_events: list[WindowNote] = Field(default_factory=list)  # popups, windows and focus seen during the wait
    held: list[str] = Field(default_factory=list)  # pending reactions the wait held for, and saw happen
    expired: list[str] = Field(default_factory=list)  # pending reactions given up after pending_s


def _overlap(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.width and b.x < a.x + a.width and a.y < b.y + b.height and b.y < a.y + a.height


class _Pending:
    """Reactions window events announce and drawing has not yet shown, each with a deadline (see the module docstring)."""

    MET = {"open": "popup closed", "placed": "popup mapped", "mapped": "mapped window drawn",
           "exposed": "unmapped area redrawn", "focus": "focus change drawn"}
    GIVEN_UP = {"open": "popup stayed open", "placed": "placed popup not mapped", "mapped": "mapped window not drawn",
                "exposed": "unmapped area not redrawn"}

    REPAINT_AHEAD_S = 0.002  # the X server's own repaint of an exposed area may be reported just before the unmap

    def __init__(self, hold_s: float, focus_s: float = 0.015) -> None:
        self.hold_s = hold_s
        self.focus_s = focus_s  # a focus change holds only a quiet period: the window manager may draw before it
        self.items: dict[tuple[str, int], tuple[float, float, Rect | None]] = {}  # (reason, window): since, deadline, rect
        self.held: list[str] = []
        self.expired: list[str] = []
        self.recent: list[Damage] = []  # drawing of the last few ms

    def add(self, reason: str, wid: int, rect: Rect | None, since: float) -> None:
        hold = self.focus_s if reason == "focus" else self.hold_s
        self.items[(reason, wid)] = (since, since + hold, rect)

    def _met(self, reason: str, wid: int) -> None:
        if self.items.pop((reason, wid), None) is not None:
            self.held.append(self.MET[reason])

    def window(self, event: WindowEvent) -> None:
        wid = event.window
        if event.kind == "placed":
            self.add("placed", wid, event.rect, event.when)
        elif event.kind == "mapped":
            self._met("placed", wid)
            self.add("mapped", wid, event.rect, event.when)
        elif event.kind in ("unmapped", "destroyed"):
            self._met("open", wid)
            self._met("placed", wid)
            self.items.pop(("mapped", wid), None)  # gone before it was drawn: nothing of it to wait for
            if event.kind == "unmapped" and event.rect is not None:
                self.add("exposed", wid, event.rect, event.when)
                if any(self._repainted(event.rect, event.when, d) for d in self.recent):
                    self._met("exposed", wid)
        elif event.kind == "active":
            self.add("focus", 0, None, event.when)

    def drawn(self, damage: Damage, caret: bool = False) -> bool:
        """Drawing arrived: meets what waited for drawing there; True if it met anything.

        A caret (drawing the settle otherwise ignores) meets only a focus change: a caret appearing is
        often all a window shows when it gets the focus.
        """
        self.recent = [d for d in self.recent if d.when > damage.when - self.REPAINT_AHEAD_S] + [damage]
        met = [key for key, (since, _, rect) in self.items.items()
               if key[0] in (("focus",) if caret else ("mapped", "exposed", "focus"))
               and ((since <= damage.when and (rect is None or _overlap(rect, damage.rect)))
                    or (key[0] == "exposed" and rect is not None and self._repainted(rect, since, damage)))]
        for reason, wid in met:
            self._met(reason, wid)
        return bool(met)

    def _repainted(self, exposed: Rect, unmapped_at: float, damage: Damage) -> bool:
        """The server painted the whole exposed area (a window with a background) as it unmapped the popup.

        That damage can be reported a moment BEFORE the UnmapNotify, and the app's
        own redraw right after it merges into it (DAMAGE reports only new areas
        until the watcher subtracts), so nothing overlapping may follow. A
        popup's own drawing just before it closes (a highlight) covers less than
        its whole area, and windows without a background (LibreOffice's) get no
        such paint: for them the wait goes on until the app redraws.
        """
        return unmapped_at - self.REPAINT_AHEAD_S <= damage.when and exposed.within(damage.rect)

    def deadline(self, now: float) -> float | None:
        """Drop what is overdue; the earliest deadline left (None: nothing pending)."""
        for key, (_, due, _) in list(self.items.items()):
            if due <= now:
                del self.items[key]
                if key[0] != "focus":  # a focus change's quiet period ran out: nothing given up
                    self.expired.append(self.GIVEN_UP[key[0]])
        return min((due for _, due, _ in self.items.values()), default=None)



def caret_shaped(rect: Rect) -> bool:
    return min(rect.width, rect.height) <= CARET_THIN and max(rect.width, rect.height) <= CARET_LONG


class _Ignore:
    """Caret shapes and user regions never count; small areas may only be tentative changes.

    ``blinks`` holds, per small area seen changing on its own, the looks
    (pixel hashes) it showed then; a change back to one of them is a blink.
    """

    def __init__(self, regions: Iterable[tuple[int, int, int, int]], screen: tuple[int, int] = (1920, 1080),
                 region_hash: Callable[[Rect], bytes] | None = None) -> None:
        self.regions = [Rect(*r) for r in regions]
        self.max_area = max(64 * 64, int(screen[0] * screen[1] * SMALL_SHARE))
        self.blink_area = max(128 * 128, int(screen[0] * screen[1] * BLINK_SHARE))
        self.region_hash = region_hash
        self.blinks: dict[Rect, list[bytes]] = {}

    def fixed(self, rect: Rect) -> bool:
        return caret_shaped(rect) or any(rect.within(region) for region in self.regions)

    def small(self, rect: Rect) -> bool:
        return rect.area <= self.max_area

    def learn(self, rects: Iterable[Rect]) -> None:
        """These areas changed with no action to cause it: remember how they look now."""
        if self.region_hash is None:
            return
        for rect in set(rects):
            if rect.area <= self.blink_area and not self.fixed(rect):
                look = self.region_hash(rect)
                looks = [v for v in self.blinks.pop(rect, []) if v != look] + [look]
                self.blinks[rect] = looks[-LOOKS_KEPT:]  # re-inserted last: least recently blinking goes first
                while len(self.blinks) > AREAS_KEPT:
                    self.blinks.pop(next(iter(self.blinks)))

    def forget(self, rects: Iterable[Rect]) -> None:
        """An action redrew these areas: what they looked like while blinking before is history."""
        for rect in rects:
            self.blinks.pop(rect, None)

    def blinked(self, rect: Rect) -> bool:
        looks = self.blinks.get(rect)
        return bool(looks) and self.region_hash is not None and self.region_hash(rect) in (looks or [])


def _region_hasher(capturer) -> Callable[[Rect], bytes] | None:
    sct = getattr(capturer, "mss", None)
    if sct is None:
        return None

    def region_hash(rect: Rect) -> bytes:
        shot = sct.grab({"left": rect.x, "top": rect.y, "width": max(1, rect.width), "height": max(1, rect.height)})
        return hashlib.blake2b(shot.raw, digest_size=16).digest()

    return region_hash


class Settler:
    """Per-run waiter: ``frame_taken()`` after each capture, ``before_act()`` and ``after_act()`` around each action."""

    def __init__(self, grab: Callable[[], Observation], watcher: DamageWatcher | None,
                 settings: SettleSettings | None = None, region_hash: Callable[[Rect], bytes] | None = None,
                 prepare: Callable[[Observation], object] | None = None, windows: WindowWatch | None = None) -> None:
        self.grab = grab
        self.windows = windows  # popups, mapped windows, focus: reactions announced before they are drawn
        self.prepare = prepare  # given: grab (and prepare) the next frame during the quiet period
        self.watcher = watcher
        self.settings = settings or SettleSettings()
        screen = watcher.size if watcher is not None else (1920, 1080)
        self.ignore = _Ignore(self.settings.ignore, screen, region_hash)
        self._changed_since_frame = False
        self._reference: Observation | None = None
        self._acted_at = 0.0
        self.learned_quiet = self.settings.quiet_s
        self.learned_click_quiet = 0.0  # a click whose first drawing was small: its effect came this much later
        self._anchor_small_click = False  # the last wait's last counted drawing was such a click's small drawing
        self._last_server_ms: int | None = None  # X time of the last counted drawing of the last wait
        self._points: list[tuple[int, int]] = []
        self._clicked = False
        self._popups_at_act: dict[int, Rect] = {}  # popups open when a click was made: it may close them
        self._early: Observation | None = None  # grabbed in the last quiet period, nothing drawn since
        self._early_cost = 0.008  # s a grab plus prepare takes (learned)
        self.early_frames = self.early_dropped = 0

    @classmethod
    def open(cls, capturer, settings: SettleSettings | None = None, *, display: str | None = None,
             xauthority=None, use_damage: bool = True,
             prepare: Callable[[Observation], object] | None = None) -> "Settler":
        """DAMAGE-based when the display has it (and ``use_damage``), frame comparison otherwise.

        ``capturer`` is a perception.Capturer (its display is watched unless ``display`` is given).
        """
        display = display or getattr(capturer, "display", None)
        xauthority = xauthority or getattr(capturer, "_xauthority", None)
        watcher = windows = None
        if use_damage and display:
            try:
                watcher = DamageWatcher(display, xauthority)
            except DamageUnavailable:
                watcher = None
        if watcher is not None and (settings or SettleSettings()).watch_windows:
            windows = WindowWatch(watcher)
        return cls(capturer.grab, watcher, settings, _region_hasher(capturer), prepare, windows)

    @property
    def method(self) -> str:
        return "damage" if self.watcher is not None else "frames"

    def close(self) -> None:
        if self.windows is not None:
            self.windows.close()
            self.windows = None
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    # -- around a step -------------------------------------------------------------
    def frame_taken(self) -> None:
        """Call right after grabbing the frame the model will see: what changed before it is not news."""
        self._early = None
        if self.watcher is not None:
            self._idle(self.watcher.poll())
        self._changed_since_frame = False

    def take_frame(self) -> Observation | None:
        """The frame grabbed early in the last wait if the screen still shows it (see the module docstring).

        Taking it counts as ``frame_taken()``; None: grab a fresh frame and call ``frame_taken()``.
        """
        early, self._early = self._early, None
        if early is None or self.watcher is None:
            return None
        idle = self.watcher.poll()
        self._idle(idle)
        moved = self.windows.take() if self.windows is not None else []  # a popup mapped: its drawing is on its way
        if moved or any(not self.ignore.fixed(d.rect) for d in idle):
            self.early_dropped += 1
            return None
        self._changed_since_frame = False
        self.early_frames += 1
        return early

    def _idle(self, idle) -> None:
        self.ignore.learn(d.rect for d in idle)
        self._late_drawing(idle)

    LATE_WINDOW_MS = 300

    def _late_drawing(self, idle) -> None:
        """Drawing soon after the last wait ended: that app needs a longer quiet period."""
        if self._last_server_ms is None:
            return
        for d in idle:
            gap = (d.server_ms - self._last_server_ms) & 0xFFFFFFFF  # X time wraps at 2**32 ms
            if 0 < gap <= self.LATE_WINDOW_MS and not self.ignore.fixed(d.rect) and not self.ignore.small(d.rect):
                wanted = min(self.settings.quiet_max_s, gap / 1000 * 1.25 + 0.005)
                if self._anchor_small_click:  # only clicks that draw small at first wait for it, not every step
                    self.learned_click_quiet = max(self.learned_click_quiet, wanted)
                else:
                    self.learned_quiet = max(self.learned_quiet, wanted)

    def before_act(self, action=None) -> None:
        """Call right before performing ``action``: notes whether the frame went stale meanwhile."""
        self._early = None
        self._points = list(action.points()) if action is not None else []
        self._clicked = isinstance(action, CLICKS)
        self._acted_at = time.monotonic()
        if self.watcher is not None:
            drained = self.watcher.poll()
            self._late_drawing(drained)
            self._last_server_ms = None  # from here on, drawing belongs to this action
            idle = [d.rect for d in drained]
            self.ignore.learn(idle)
            self._changed_since_frame = any(not self.ignore.fixed(r) and not self.ignore.small(r) for r in idle)
            if self.windows is not None:
                self.windows.take()  # what windows did before the action is not its doing
                self._popups_at_act = self._popups_under_click() if self._clicked else {}
        else:
            self._reference = self.grab()

    def _popups_under_click(self) -> dict[int, Rect]:
        """Open popups the click lands in: it may close them (one elsewhere closes at once, or stays: an overlay)."""
        assert self.windows is not None
        return {wid: r for wid, r in self.windows.open_popups().items()
                if any(r.x <= x < r.x + r.width and r.y <= y < r.y + r.height for x, y in self._points)}

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
    def _kind(self, rect: Rect, when: float, start: float) -> str:
        """"ignored", "tentative" (a small late change: maybe a blink) or "counted"."""
        if self.ignore.fixed(rect):
            return "ignored"
        if self.ignore.small(rect) and (when - start > self.settings.prompt_s or not self._near(rect)):
            return "tentative"
        if self.ignore.blinked(rect):  # back to a look it had while blinking on its own
            return "tentative"
        return "counted"

    def _near(self, rect: Rect) -> bool:
        if not self._points:  # keys, typing: their reactions are wherever the focus is
            return True
        return any(rect.x - NEAR <= x < rect.x + rect.width + NEAR and rect.y - NEAR <= y < rect.y + rect.height + NEAR
                   for x, y in self._points)

    def _wait_damage(self) -> SettleResult:
        s, start = self.settings, time.monotonic()  # the action is done: times count from its end
        cap_at, first_at = start + s.cap_s, start + s.first_change_s
        first: float | None = None  # the first counted change: ends the first-change wait
        tentative: float | None = None  # the first small late change
        last = gap = 0.0
        bursts = ignored = tries = 0
        big_seen = False
        early: Observation | None = None  # grabbed in this quiet period; dropped when anything is counted after it
        pending = _Pending(s.pending_s, self.learned_quiet)  # reactions window events announced, not drawn yet
        for wid, rect in self._popups_at_act.items():
            pending.add("open", wid, rect, start)
        notes: list[WindowNote] = []
        while True:
            now = time.monotonic()
            hold = pending.deadline(now)
            quiet = min(s.quiet_max_s, max(self.learned_quiet, 2 * gap))
            if self._clicked and not big_seen:  # a pressed look or a highlight: its effect came late before (learned)
                quiet = max(quiet, s.click_quiet_s, self.learned_click_quiet)
            if first is not None:
                until = last + quiet
            elif tentative is not None:
                until = max(first_at, last + quiet)
            else:
                until = first_at
            if hold is not None:
                until = max(until, hold)
            if now >= cap_at or now >= until:
                break
            wake = min(until, cap_at)
            if hold is None and first is not None and early is None and self.prepare is not None and tries < EARLY_TRIES:
                grab_at = last + max(EARLY_MIN_S, quiet - 1.3 * self._early_cost)
                if now >= grab_at:
                    tries += 1
                    early = self._grab_early()
                    continue
                wake = min(wake, grab_at)
            events = self.watcher.poll(wake - now)
            for event in self._window_events(start, notes):
                pending.window(event)
            kinds = [(d, self._kind(d.rect, d.when, start)) for d in events]
            for i, (d, kind) in enumerate(kinds):
                if kind == "ignored":
                    pending.drawn(d, caret=True)  # still ignored, but it may be a focus change's whole look
                elif pending.drawn(d):
                    kinds[i] = (d, "counted")  # what a window event announced is never a blink
            ignored += sum(kind == "ignored" for _, kind in kinds)
            if first is None:
                counted = [d for d, kind in kinds if kind == "counted"]
                maybe = [d for d, kind in kinds if kind == "tentative"]
                self.ignore.learn(d.rect for d in maybe)
                if maybe and tentative is None:
                    tentative = maybe[0].when
                if maybe and not counted:
                    last = maybe[-1].when
                    continue
            else:
                counted = [d for d, kind in kinds if kind != "ignored"]  # once changing, any drawing delays quiet
            if counted:
                early = None  # drawn after (or racing) the early grab: that frame may be out of date
                self.ignore.forget(d.rect for d in counted)
                big = [d for d in counted if not self.ignore.small(d.rect)]
                if big:
                    big_seen = True
                if big or (self._clicked and not big_seen):  # a click's small drawing: its effect may come later
                    self._last_server_ms = counted[-1].server_ms
                    self._anchor_small_click = not big_seen
                if first is None:
                    first = counted[0].when
                elif hold is None:  # a pause while a window event held the wait is explained, not an animation's
                    gap = max(gap, counted[0].when - last)
                last = counted[-1].when
                bursts += 1
        end = time.monotonic()
        self._early = early if end < cap_at else None
        seen = first if first is not None else tentative
        return SettleResult(
            method="damage", changed=seen is not None, settled=seen is not None and end < cap_at,
            first_change_ms=None if seen is None else round(max(0.0, seen - start) * 1000, 2),
            wait_ms=round((end - start) * 1000, 2), bursts=bursts, ignored=ignored,
            quiet_ms=round(self.learned_quiet * 1000, 1), quiet_end_ms=round(quiet * 1000, 1),
            window_events=notes, held=pending.held, expired=pending.expired,
        )

    def _window_events(self, start: float, notes: list[WindowNote]) -> list[WindowEvent]:
        """Window events read with the last poll (noted for the result)."""
        if self.windows is None:
            return []
        events = self.windows.take()
        notes.extend(WindowNote(kind=e.kind, popup=e.popup, at_ms=round((e.when - start) * 1000, 2)) for e in events)
        return events

    def _grab_early(self) -> Observation | None:
        start = time.monotonic()
        try:
            frame = self.grab()
            if self.prepare is not None:
                self.prepare(frame)
        except Exception:  # a failed early grab only means the loop grabs as usual (and reports any error then)
            return None
        self._early_cost = 0.7 * self._early_cost + 0.3 * (time.monotonic() - start)
        return frame

    def _changed_box(self, a: Observation, b: Observation) -> list[Rect]:
        if a.size != b.size:
            return [Rect(0, 0, *b.size)]
        if a.image.tobytes() == b.image.tobytes():
            return []
        box = ImageChops.difference(a.image, b.image).getbbox()
        return [Rect(box[0], box[1], box[2] - box[0], box[3] - box[1])] if box else []

    def _wait_frames(self) -> SettleResult:
        s, start = self.settings, time.monotonic()  # the action is done: times count from its end
        cap_at, first_at = start + s.cap_s, start + s.first_change_s
        previous = self._reference or self.grab()
        first: float | None = None
        tentative: float | None = None
        bursts = ignored = 0
        while time.monotonic() < (cap_at if first is not None else min(cap_at, first_at)):
            time.sleep(s.frame_interval_s if first is None else s.quiet_s)
            frame = self.grab()
            kinds = [self._kind(r, frame.timestamp, start) for r in self._changed_box(previous, frame)]
            previous = frame
            ignored += kinds.count("ignored")
            if first is None:
                if "counted" in kinds:
                    first, bursts = frame.timestamp, 1
                elif "tentative" in kinds and tentative is None:
                    tentative = frame.timestamp
            elif any(kind != "ignored" for kind in kinds):
                bursts += 1
            else:
                break  # changed, then two frames a quiet period apart agree
        end = time.monotonic()
        self._reference = None
        seen = first if first is not None else tentative
        return SettleResult(
            method="frames", changed=seen is not None, settled=seen is not None and end < cap_at,
            first_change_ms=None if seen is None else round(max(0.0, seen - start) * 1000, 2),
            wait_ms=round((end - start) * 1000, 2), bursts=bursts, ignored=ignored,
        )


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
