"""What a model sees: apps start maximized on a grey desktop, and real apps' menus render completely.

The menu test opens the File menu of a GTK app (mousepad) and of LibreOffice
Calc, checks that the whole menu was drawn (the changed area reaches the
menu's last item) and that closing it restores the window behind exactly.
"""

from __future__ import annotations

import shutil
import time

import pytest
from PIL import ImageChops

import deskpilot
from deskpilot.agent.desk.screens import similarity
from deskpilot.sandbox import x11
from deskpilot.sandbox.wm import BACKGROUND


def _maximized(desk, title: str) -> bool:
    wid = desk.sandbox.wait_for_window(title, timeout=20)
    conn = x11.connect(desk.sandbox.display, desk.sandbox.xauthority)
    try:
        window = conn.create_resource_object("window", wid)
        state = window.get_full_property(conn.intern_atom("_NET_WM_STATE"), 0)
        atoms = set(state.value) if state else set()
        want = {conn.intern_atom("_NET_WM_STATE_MAXIMIZED_VERT"), conn.intern_atom("_NET_WM_STATE_MAXIMIZED_HORZ")}
        return want <= atoms
    finally:
        conn.close()


def test_apps_start_maximized_unless_asked_not_to_on_a_grey_desktop():
    with deskpilot.Sandbox(size=(800, 600), apps=["xterm -title big"]) as desk:
        assert _maximized(desk, "big")
    with deskpilot.Sandbox(size=(800, 600), apps=["xterm -title small -geometry 40x10+0+0"], maximize=False) as desk:
        assert not _maximized(desk, "small")
        assert desk.screenshot().getpixel((790, 590)) == BACKGROUND  # the desktop shows around the window


def _open_menu_and_close(desk, at: tuple[int, int], min_height: int) -> None:
    before = desk.screenshot()
    desk.click(*at)
    time.sleep(0.3)
    desk.settle()
    opened = desk.screenshot()
    box = ImageChops.difference(before.convert("RGB"), opened.convert("RGB")).getbbox()
    assert box is not None, "the menu did not open"
    assert box[3] - box[1] >= min_height, f"the menu was drawn only in {box}"
    desk.key("escape")
    time.sleep(0.3)
    desk.settle()
    assert similarity(before, desk.screenshot()) > 0.999, "the window behind the menu was not repainted"


@pytest.mark.skipif(shutil.which("mousepad") is None, reason="mousepad is not installed")
def test_a_gtk_menu_renders_completely_and_the_window_behind_comes_back():
    with deskpilot.Sandbox(size=(1024, 700), apps=["mousepad"]) as desk:
        desk.sandbox.wait_for_window("Mousepad", timeout=20)
        desk.settle()
        _open_menu_and_close(desk, (20, 40), min_height=300)  # File: 14 items, ~360 px


@pytest.mark.skipif(shutil.which("localc") is None, reason="LibreOffice Calc is not installed")
def test_libreoffice_menu_renders_completely_and_the_sheet_behind_comes_back():
    with deskpilot.Sandbox(size=(1280, 800), apps=["localc"], ready_timeout=60) as desk:
        desk.sandbox.wait_for_window("LibreOffice Calc", timeout=60)
        from deskpilot.workflow.runner import _wait_quiet

        _wait_quiet(desk, 2.0, deadline=time.monotonic() + 60)
        _open_menu_and_close(desk, (15, 28), min_height=440)  # File: 25 entries, ~480 px
