"""VNC on a sandbox's display: a real client (vncdotool) against Debian's x11vnc.

The client connects with the printed password, sees the same pixels the
sandbox's own capture sees, and its clicks and typing reach a Tk probe app;
view-only refuses input, a wrong password is refused, and nothing is left
after the owner is SIGKILLed.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import ImageChops

from apps import launch_probe
from conftest import kill_owner_after_report
from deskpilot.perception import Capturer
from deskpilot.sandbox import Sandbox
from vnc_client import connect, framebuffer, type_text

SIZE = (1024, 700)


@pytest.fixture(scope="module")
def sb():
    with Sandbox(size=SIZE) as box:
        yield box


@pytest.fixture(scope="module")
def probe(sb):
    return launch_probe(sb, title="vnc-probe")


@pytest.fixture(scope="module")
def vnc(sb, probe):
    return sb.start_vnc()


def _centre(probe, widget: str) -> tuple[int, int]:
    x, y, w, h = probe.widgets[widget]
    return x + w // 2, y + h // 2


def test_url_names_loopback_port_and_password_which_stays_off_ps_and_disk(sb, vnc):
    assert vnc.url == f"vnc://:{vnc.access.password}@127.0.0.1:{vnc.access.port}"
    assert len(vnc.access.password) == 8 and vnc.access.password.isalnum()
    cmdline = Path(f"/proc/{vnc.pid}/cmdline").read_bytes().decode()
    assert vnc.access.password not in cmdline and "-localhost" in cmdline
    assert not list(sb.dir.glob("vnc.passwd*"))  # x11vnc deleted the file once read
    listening = Path("/proc/net/tcp").read_text()
    assert f"0100007F:{vnc.access.port:04X} 00000000:0000 0A" in listening  # 127.0.0.1, LISTEN
    assert f"00000000:{vnc.access.port:04X} 00000000:0000 0A" not in listening  # not 0.0.0.0


def test_framebuffer_equals_the_sandbox_screenshot(sb, vnc):
    client = connect(vnc.access.port, vnc.access.password)
    try:
        with Capturer(sb) as capturer:
            deadline = time.monotonic() + 20
            while True:  # x11vnc polls the screen: wait until it has caught up, then they must match
                shot, seen = capturer.grab().image.convert("RGB"), framebuffer(client)
                diff = ImageChops.difference(shot, seen).getbbox()
                if diff is None or time.monotonic() > deadline:
                    break
        assert seen.size == SIZE
        assert diff is None, f"framebuffer differs from the screenshot in {diff}"
    finally:
        client.disconnect()


def test_click_and_typing_from_the_client_reach_the_tk_probe(sb, vnc, probe):
    client = connect(vnc.access.port, vnc.access.password)
    try:
        x, y = _centre(probe, "e1")
        mark = probe.log.mark()
        client.mouseMove(x, y)
        client.mousePress(1)
        press = probe.log.wait_for(lambda e: e["ev"] == "press" and e["w"] == "e1", mark, timeout=20)
        assert (press["x_root"], press["y_root"]) == (x, y)
        type_text(client, "hello vnc")
        probe.log.wait_for(lambda e: e["ev"] == "content" and e["e1"] == "hello vnc", mark, timeout=20)
    finally:
        client.disconnect()


def test_view_only_refuses_clicks_and_typing(sb, vnc, probe):
    client = connect(vnc.access.port, vnc.access.password)
    try:
        vnc.set_view_only(True)
        x, y = _centre(probe, "e2")
        mark = probe.log.mark()
        client.mouseMove(x, y)
        client.mousePress(1)
        type_text(client, "ignored")
        framebuffer(client)  # a round trip: x11vnc has handled the input messages sent before it
        vnc.set_view_only(False)
        client.mouseMove(x, y)
        client.mousePress(1)
        probe.log.wait_for(lambda e: e["ev"] == "press" and e["w"] == "e2", mark, timeout=20)  # x11vnc defers pointer events
        type_text(client, "ok")
        probe.log.wait_for(lambda e: e["ev"] == "content" and e["e2"] == "ok", mark, timeout=20)
        refused = [e for e in probe.log.since(mark) if e["ev"] == "content" and "ignored" in e["e2"] + e["e1"]]
        assert refused == []
    finally:
        client.disconnect()


def test_wrong_password_is_refused(vnc):
    with pytest.raises(Exception, match="(?i)password|auth"):
        client = connect(vnc.access.port, "wrong123", timeout=20)
        framebuffer(client)


def test_start_vnc_view_only_and_fixed_port_then_close_stops_it():
    with socket.socket() as s:  # a free port now; x11vnc binds it next
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Sandbox(size=(320, 240)) as box:
        server = box.start_vnc(port, view_only=True)
        assert server.access.port == port and server.access.view_only
        assert "-viewonly" in Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        assert box.start_vnc() is server  # one per sandbox
        pid = server.pid
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


OWNER = """
import json, sys
from deskpilot.sandbox import Sandbox
box = Sandbox(size=(320, 240))
server = box.start_vnc()
web = box.start_vnc_web()
print(json.dumps({"pid": server.pid, "web": web.pid, "port": server.access.port, "web_port": web.port,
                  "dir": str(box.dir)}), flush=True)
sys.stdin.read()
"""


def test_owner_sigkill_leaves_no_vnc_server_and_no_websockify():
    info = kill_owner_after_report(OWNER)
    deadline = time.monotonic() + 15
    while any(_alive(info[k]) for k in ("pid", "web")) or Path(info["dir"]).exists():
        assert time.monotonic() < deadline, "x11vnc, websockify or the sandbox folder outlived the owner"
        time.sleep(0.05)
    for port in (info["port"], info["web_port"]):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0


def test_novnc_websocket_needs_the_token(sb, vnc):
    web = sb.start_vnc_web()
    page = urllib.request.urlopen(f"http://127.0.0.1:{web.port}/vnc.html", timeout=20).read()
    assert b"noVNC" in page
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    for path, wanted in ((f"/websockify?token={web.token}", 101), ("/websockify?token=wrong", None), ("/websockify", None)):
        with socket.create_connection(("127.0.0.1", web.port), timeout=20) as conn:
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in upgrade.items())
            conn.sendall((request + "\r\n").encode())
            status_line = conn.recv(4096).split(b"\r\n")[0]
            if wanted == 101:
                assert b" 101 " in status_line, status_line
                assert b"RFB 003." in conn.recv(64)  # x11vnc greets through the proxy (in a WebSocket frame)
            else:
                assert b" 101 " not in status_line or conn.recv(12) == b"", (path, status_line)


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
