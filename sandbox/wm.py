"""Openbox as the sandbox's window manager, with the host-escape hatches removed.

Openbox's stock config runs programs from key bindings (``Execute``) and from
the desktop's right-click menu; a model pressing Super+E or right-clicking the
desktop must not start programs. We keep the stock focus/move/resize bindings
and drop those actions.

Optionally every normal window starts maximized (an openbox application rule:
dialogs, menus and splash screens keep their size), so a model sees an app
using the whole screen instead of a small window on an empty desktop. Once the
manager runs, the root window gets a neutral grey instead of Xvfb's black, so
window edges and empty desktop are told apart.
"""

from __future__ import annotations

import functools
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from Xlib import error as xerror

from deskpilot.sandbox.errors import SandboxError
from deskpilot.sandbox.x11 import connect, root_changes, wm_running

STOCK_RC = Path("/etc/xdg/openbox/rc.xml")
_NS = "http://openbox.org/3.4/rc"
_BANNED_MENUS = {"root-menu", "client-list-combined-menu"}
_MINIMAL_RC = f'<?xml version="1.0"?><openbox_config xmlns="{_NS}"><focus><focusNew>yes</focusNew></focus></openbox_config>'
BACKGROUND = (0x6E, 0x75, 0x7C)  # neutral grey: not white like documents, not black like an empty frame


def _banned(action: ET.Element) -> bool:
    name = action.get("name", "")
    if name in {"Execute", "Exit", "Restart", "SessionLogout"}:
        return True
    menu = action.find(f"{{{_NS}}}menu")
    return name == "ShowMenu" and menu is not None and (menu.text or "").strip() in _BANNED_MENUS


def _maximize_rule(root: ET.Element) -> None:
    apps = root.find(f"{{{_NS}}}applications")
    if apps is None:
        apps = ET.SubElement(root, f"{{{_NS}}}applications")
    rule = ET.SubElement(apps, f"{{{_NS}}}application", {"class": "*", "type": "normal"})
    ET.SubElement(rule, f"{{{_NS}}}maximized").text = "yes"


def safe_config(stock: Path = STOCK_RC, *, maximize: bool = False) -> str:
    """The stock rc.xml without actions that start programs or leave the session.

    Made once per version of the stock file (parsing it cost ~2 ms of CPU per desktop started).
    """
    try:
        version = stock.stat()
        stamp: tuple[int, int] | None = (version.st_mtime_ns, version.st_size)
    except OSError:
        stamp = None
    return _safe_config(stock, stamp, maximize)


@functools.lru_cache(maxsize=8)
def _safe_config(stock: Path, stamp: tuple[int, int] | None, maximize: bool) -> str:
    ET.register_namespace("", _NS)
    if stamp is None:
        root = ET.fromstring(_MINIMAL_RC)
        if maximize:
            _maximize_rule(root)
        return ET.tostring(root, encoding="unicode")
    tree = ET.parse(stock)
    for binding in list(tree.iter()):
        for action in [a for a in binding if a.tag == f"{{{_NS}}}action" and _banned(a)]:
            binding.remove(action)
    for context in tree.iter():
        for binding in [b for b in context if b.tag in {f"{{{_NS}}}keybind", f"{{{_NS}}}mousebind"}]:
            if len(binding) == 0:
                context.remove(binding)
    if maximize:
        _maximize_rule(tree.getroot())
    return ET.tostring(tree.getroot(), encoding="unicode")


def wait_for_wm(display: str, xauthority: Path, alive, timeout: float = 10.0, conn=None) -> None:
    """Block until a window manager owns the display, then paint the desktop background.

    SandboxError if the manager dies or is slow. ``conn``: an open connection
    to use (and leave open), else one is opened and closed here.
    """
    deadline = time.monotonic() + timeout
    own = conn is None
    conn = connect(display, xauthority) if own else conn
    try:
        with root_changes(conn) as changed:
            while not wm_running(conn):
                if not alive():
                    raise SandboxError("openbox exited during startup")
                if time.monotonic() > deadline:
                    raise SandboxError(f"openbox did not start within {timeout:.0f} s")
                changed(0.1)  # at the root's next change (openbox announcing itself), or to look at openbox again
        paint_background(conn)
    except xerror.XError as exc:
        raise SandboxError(f"X error while waiting for openbox: {exc}") from None
    finally:
        if own:
            conn.close()


def paint_background(conn, rgb: tuple[int, int, int] = BACKGROUND) -> None:
    """Give the root window a solid colour (Xvfb's is black; openbox sets none)."""
    screen = conn.screen()
    pixel = screen.default_colormap.alloc_color(*(c * 257 for c in rgb)).pixel
    screen.root.change_attributes(background_pixel=pixel)
    screen.root.clear_area(0, 0, 0, 0)
    conn.sync()
