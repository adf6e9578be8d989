"""Window events that say an action's reaction is still under way: popups opening and closing, focus moving.

DAMAGE says where something was drawn, not whether more is coming. Some
reactions announce themselves to the X server before they are drawn:

- a popup (a drop-down list, a menu, a combo box's list, a tooltip) is an
  override-redirect child of the root window; its ``MapNotify`` comes before
  its content is drawn, and when it closes, its ``UnmapNotify`` comes before
  the window under it redraws the area (until then the screen still shows
  the closed list: LibreOffice repaints 10-30 ms after unmapping it);
- an override-redirect window created or moved with a real size (more than
  1x1) but not yet mapped is a popup about to open (Tk and LibreOffice
  create such windows at once and map them when they are ready; the 1x1
  helper windows they also create never show);
- the window manager's ``_NET_ACTIVE_WINDOW`` changing says the focus moved
  (a window activated by the click will redraw its title and focus look);
  the property is read on each notification, as a window manager may set
  it again to the window that already has it.

This watch selects ``SubstructureNotify`` and ``PropertyChange`` on the root
window on the DAMAGE watcher's own connection, so window events and drawing
arrive in the order the X server produced them. It keeps a small model of the
root's children (override-redirect flag, geometry, mapped) from one initial
query and the events after it, so asking which popups are open costs no round
trip. Popups are recognised by override-redirect alone: LibreOffice's own
(non-GTK) lists carry no ``_NET_WM_WINDOW_TYPE``; GTK's menus and combo lists
(``_NET_WM_WINDOW_TYPE_DROPDOWN_MENU``/``POPUP_MENU``/``COMBO``) are
override-redirect too.

Grabs are not probed: the only way to learn whether another client holds the
pointer or keyboard is to try grabbing it, which sends the app crossing or
focus events (a repaint of its hover or focus look) and can make the app's own
grab fail if it races ours. An open popup that holds a grab is seen as the
mapped popup itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from Xlib import X, error as xerror

from deskpilot.perception.damage import DamageWatcher, Rect

Kind = Literal["created", "placed", "mapped", "unmapped", "destroyed", "active"]


@dataclass(frozen=True)
class WindowEvent:
    """One root-level window event, read at ``when`` (``time.monotonic()``, as damage is stamped)."""

    when: float
    kind: Kind
    window: int
    rect: Rect | None = None  # where the window is (was, for unmapped/destroyed)
    popup: bool = False  # override-redirect


@dataclass
class _Window:
    popup: bool
    rect: Rect
    mapped: bool = False


@dataclass
class WindowWatch:
    """Root-level window events on ``watcher``'s connection, and which popups are open now.

    Events are collected whenever the watcher is polled; ``take()`` hands them over.
    """

    watcher: DamageWatcher
    windows: dict[int, _Window] = field(default_factory=dict)
    events: list[WindowEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        conn = self.watcher.connection
        self._active_atom = conn.intern_atom("_NET_ACTIVE_WINDOW")
        root = conn.screen().root
        self._root = root
        self._active = self._read_active()
        root.change_attributes(event_mask=X.SubstructureNotifyMask | X.PropertyChangeMask)
        self.watcher.others.append(self._on_event)
        conn.sync()  # from here on every change is reported; the query below may see some twice, which is harmless
        for child in root.query_tree().children:
            try:
                attributes, geometry = child.get_attributes(), child.get_geometry()
            except (xerror.BadWindow, xerror.BadDrawable, xerror.BadMatch):
                continue  # gone meanwhile
            self.windows.setdefault(child.id, _Window(
                popup=bool(attributes.override_redirect),
                rect=Rect(geometry.x, geometry.y, geometry.width, geometry.height),
                mapped=attributes.map_state != X.IsUnmapped))
        self.events.clear()

    def take(self) -> list[WindowEvent]:
        """The events read since the last call, oldest first."""
        taken, self.events = self.events, []
        return taken

    def open_popups(self) -> dict[int, Rect]:
        """Mapped override-redirect windows that show on the screen (not 1x1 helpers or ones placed off it)."""
        width, height = self.watcher.size
        return {wid: w.rect for wid, w in self.windows.items()
                if w.popup and w.mapped and w.rect.width > 1 and w.rect.height > 1
                and w.rect.x < width and w.rect.y < height
                and w.rect.x + w.rect.width > 0 and w.rect.y + w.rect.height > 0}

    def close(self) -> None:
        if self._on_event in self.watcher.others:
            self.watcher.others.remove(self._on_event)

    # -- the model of the root's children --------------------------------------------------
    def _on_event(self, event) -> None:
        kind = event.type
        if kind == X.PropertyNotify:
            if event.atom == self._active_atom:
                active = self._read_active()  # a notification may set the same window again: only a change counts
                if active != self._active:
                    self._active = active
                    self._note("active", active or 0, None, False)
            return
        window = getattr(event, "window", None)
        wid = window.id if window is not None else None
        if wid is None:
            return
        known = self.windows.get(wid)
        if kind == X.CreateNotify:
            rect = Rect(event.x, event.y, event.width, event.height)
            self.windows[wid] = _Window(popup=bool(event.override), rect=rect)
            if event.override:
                self._note("created", wid, rect, True)
                if _real(rect):
                    self._note("placed", wid, rect, True)
        elif kind == X.ConfigureNotify and known is not None:
            rect = Rect(event.x, event.y, event.width, event.height)
            if event.override and not known.mapped and _real(rect) and rect != known.rect:
                self._note("placed", wid, rect, True)  # an unmapped popup given its place: it is about to show
            known.rect = rect
            known.popup = bool(event.override)
        elif kind == X.MapNotify:
            if known is None:
                return
            known.popup = bool(event.override)
            if not known.mapped:
                known.mapped = True
                self._note("mapped", wid, known.rect, known.popup)
        elif kind == X.UnmapNotify and known is not None and known.mapped:
            known.mapped = False
            self._note("unmapped", wid, known.rect, known.popup)
        elif kind == X.DestroyNotify and known is not None:
            del self.windows[wid]
            self._note("destroyed", wid, known.rect, known.popup)
        elif kind == X.ReparentNotify and known is not None and event.parent.id != self.watcher.connection.screen().root.id:
            del self.windows[wid]  # the window manager framed it: its frame is the root's child now

    def _read_active(self) -> int | None:
        try:
            prop = self._root.get_full_property(self._active_atom, X.AnyPropertyType)
        except xerror.XError:
            return None
        return int(prop.value[0]) if prop is not None and len(prop.value) else None

    def _note(self, kind: Kind, wid: int, rect: Rect | None, popup: bool) -> None:
        self.events.append(WindowEvent(time.monotonic(), kind, wid, rect, popup))


def _real(rect: Rect) -> bool:
    """Bigger than the 1x1 helper windows toolkits create and never show."""
    return rect.width > 1 and rect.height > 1
