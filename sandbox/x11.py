"""Small X queries through python-xlib: is a window manager up, which windows exist."""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable, Iterator
from pathlib import Path

from Xlib import X, Xatom, display as xdisplay, error as xerror

from deskpilot.sandbox.xauth import authority


def connect(display: str, xauthority: Path | None) -> xdisplay.Display:
    """Open a python-xlib connection using the sandbox's cookie."""
    with authority(xauthority):
        return xdisplay.Display(display)


@contextlib.contextmanager
def root_changes(conn: xdisplay.Display) -> Iterator[Callable[[float], None]]:
    """For the block, a ``wait(seconds)`` that returns at the root window's next property change.

    The window manager announces itself (``_NET_SUPPORTING_WM_CHECK``) and each window it manages
    (``_NET_CLIENT_LIST``) as root properties, so a start-up wait that re-checks at each change wakes
    at once and costs nothing meanwhile, where polling every 10-20 ms cost ~0.13 ms of CPU a look for
    seconds on a loaded machine. Changes made between a check and the wait are queued, not missed:
    the mask is set before the first check. Events are drained and the mask cleared at the end (the
    connection may be shared).
    """
    root = conn.screen().root
    root.change_attributes(event_mask=X.PropertyChangeMask)
    conn.sync()

    def wait(seconds: float) -> None:
        if not _drain(conn) and select.select([conn.fileno()], [], [], max(0.0, seconds))[0]:
            _drain(conn)

    try:
        yield wait
    finally:
        with contextlib.suppress(xerror.XError, OSError):
            root.change_attributes(event_mask=0)
            conn.sync()
            _drain(conn)


def _drain(conn: xdisplay.Display) -> bool:
    drained = False
    while conn.pending_events():
        conn.next_event()
        drained = True
    return drained


def wm_running(conn: xdisplay.Display) -> bool:
    """True once an EWMH window manager has set ``_NET_SUPPORTING_WM_CHECK``."""
    root = conn.screen().root
    prop = root.get_full_property(conn.intern_atom("_NET_SUPPORTING_WM_CHECK"), Xatom.WINDOW)
    return bool(prop and prop.value[0])


def client_windows(conn: xdisplay.Display) -> list[int]:
    """Top-level client ids from the window manager's ``_NET_CLIENT_LIST``."""
    root = conn.screen().root
    prop = root.get_full_property(conn.intern_atom("_NET_CLIENT_LIST"), Xatom.WINDOW)
    return list(prop.value) if prop else []


def window_title(conn: xdisplay.Display, wid: int) -> str:
    """``_NET_WM_NAME`` (UTF-8) or else ``WM_NAME``; empty if the window is gone."""
    window = conn.create_resource_object("window", wid)
    try:
        prop = window.get_full_property(conn.intern_atom("_NET_WM_NAME"), conn.intern_atom("UTF8_STRING"))
        if prop is None:
            prop = window.get_full_property(Xatom.WM_NAME, X.AnyPropertyType)
    except (xerror.BadWindow, xerror.BadMatch):
        return ""
    if prop is None:
        return ""
    value = prop.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def find_window(conn: xdisplay.Display, title: str, *, ignore_case: bool = False) -> int | None:
    """First managed top-level window whose title contains ``title`` (any case with ``ignore_case``)."""
    wanted = title.casefold() if ignore_case else title
    for wid in client_windows(conn):
        name = window_title(conn, wid)
        if wanted in (name.casefold() if ignore_case else name):
            return wid
    return None


def window_titles(conn: xdisplay.Display) -> list[str]:
    """Titles of the managed top-level windows, in the window manager's order (untitled ones left out)."""
    return [t for t in (window_title(conn, wid) for wid in client_windows(conn)) if t]


def mapped_top_levels(conn: xdisplay.Display) -> int:
    """How many children of the root window are mapped (managed or not).

    Override-redirect windows (menus, tooltips, openbox's own 1x1 support
    window) are not counted: an app that never showed a window reads as 0.
    """
    count = 0
    for child in conn.screen().root.query_tree().children:
        try:
            attributes = child.get_attributes()
            if attributes.map_state != X.IsUnmapped and not attributes.override_redirect:
                count += 1
        except (xerror.BadWindow, xerror.BadMatch):
            continue
    return count


def set_root_string(conn: xdisplay.Display, name: str, value: str) -> None:
    """Set a STRING property on the root window (read by every client of this display)."""
    root = conn.screen().root
    root.change_property(conn.intern_atom(name), Xatom.STRING, 8, value.encode())
    conn.sync()  # on the server before any app starts
