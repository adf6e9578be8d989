"""`--vnc` on the commands: the one stderr line, a client typing into the run's desk, nothing left after."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vnc_client import connect, type_text

DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]
URL = re.compile(r"^vnc://:([A-Za-z0-9]{8})@127\.0\.0\.1:(\d+)$")


def box(call: str) -> str:
    return f"Acting.\n<|begin_of_box|>{call}<|end_of_box|>"


def _read_url(proc: subprocess.Popen, timeout: float = 60.0) -> tuple[str, int, list[str]]:
    """Read stderr lines until the vnc:// line; returns (password, port, lines seen)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            line = proc.stderr.readline().decode().rstrip("\n")
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if found := URL.match(line):
                return found.group(1), int(found.group(2)), seen
    raise AssertionError(f"no vnc:// line on stderr: {seen[-10:]}")


def _wait_file(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return path.read_text()


def _wait_ended(proc: subprocess.Popen, timeout: float) -> None:
    """Wait for the interrupted command; if it hangs, kill it and fail with what it said."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        said = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
        pytest.fail(f"the command did not end within {timeout:g} s of Ctrl-C; its stderr:\n{said}")


def test_run_vnc_prints_one_line_and_a_client_types_into_the_desk(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([box("WAIT()")] * 40))
    out = tmp_path / "run"
    proc = subprocess.Popen(DESKPILOT + ["run", "wait for the person", "--app", "xterm", "--share", str(share),
                                         "--script", str(script), "--size", "800x600", "--out", str(out), "--vnc"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, bufsize=0)  # unbuffered: select() sees every line
    try:
        password, port, _ = _read_url(proc)
        client = connect(port, password)
        try:
            client.mouseMove(400, 300)
            client.mousePress(1)
            type_text(client, f"echo typed over vnc > {share}/f")
            client.keyPress("enter")
            assert _wait_file(share / "f").strip() == "typed over vnc"
        finally:
            client.disconnect()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _wait_ended(proc, 60)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the VNC server outlived the run"
    leaked = [p for p in out.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaked == [], f"the VNC password was written into the run folder: {leaked}"


def test_view_only_without_vnc_is_a_one_line_usage_error(tmp_path):
    done = subprocess.run(DESKPILOT + ["run", "x", "--script", str(tmp_path / "r.json"), "--view-only"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--view-only goes with --vnc" in done.stderr
    assert "Traceback" not in done.stderr


WORKFLOW = """
name: person-in-the-loop
desktop:
  size: 800x600
  apps: ["xterm"]
  shares: ["{share}"]
steps:
  - wait_for_window: "xterm"
  - wait_for_window: "vnc-done"
    timeout: 120
  - check: {{file: "{share}/f", contains: "from vnc"}}
"""


def test_workflow_run_vnc_lets_a_person_do_a_step(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    flow = tmp_path / "flow.yaml"
    flow.write_text(WORKFLOW.format(share=share))
    proc = subprocess.Popen(DESKPILOT + ["workflow", "run", str(flow), "--out", str(tmp_path / "run"), "--vnc"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, bufsize=0)  # unbuffered: select() sees every line
    try:
        password, port, _ = _read_url(proc)
        client = connect(port, password)
        try:
            client.mouseMove(400, 300)
            client.mousePress(1)
            type_text(client, f"echo from vnc > {share}/f; xterm -T vnc-done")
            client.keyPress("enter")
        finally:
            client.disconnect()
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, (out + err).decode()[-2000:]
    assert b"passed" in out + err


def test_eval_vnc_gives_each_desk_its_line_and_refuses_a_fixed_port(tmp_path):
    counter = Path(__file__).resolve().parents[1] / "deskpilot" / "eval" / "example" / "counter.py"
    script = [box("left_click(start_box='[350,600]')"), box("DONE()")]
    task = {"id": "one", "task": "Press Add one once", "desktop": {"size": "640x400", "apps": [f"python3 {counter}"]},
            "max_steps": 4, "script": script, "checks": [{"window_title": "Counter: 1"}]}
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "mini", "tasks": [task]}))
    done = subprocess.run(DESKPILOT + ["eval", str(suite), "--out", str(tmp_path / "ev"), "-j", "1", "--warm", "0",
                                       "--vnc"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    assert len([ln for ln in done.stderr.splitlines() if URL.match(ln)]) == 1
    fixed = subprocess.run(DESKPILOT + ["eval", str(suite), "--vnc", "5999"], capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 2 and "without a port number" in fixed.stderr


def test_mcp_vnc_prints_the_line_when_a_client_opens_its_sandbox(tmp_path):
    pytest.importorskip("mcp")
    import anyio
    from mcp.client.client import Client

    from backend_fixtures import free_port

    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    token = "vnc-test-token-0123456789"  # MCP over HTTP needs a bearer token (here from the environment)
    server = subprocess.Popen(DESKPILOT + ["mcp", "--transport", "http", "--port", str(port), "--size", "640x480",
                                           "--app", "xterm", "--out", str(tmp_path / "runs"), "--vnc", "--view-only"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, bufsize=0,  # unbuffered: select() sees every line
                              env={**os.environ, "DESKPILOT_MCP_TOKEN": token})
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while not any("MCP server at" in line for line in seen):
            assert time.monotonic() < deadline and server.poll() is None, seen
            seen.append(server.stderr.readline().decode())

        async def main():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300))
            async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http),
                              mode="legacy") as client:
                await client.call_tool("screenshot", {})
                password, vnc_port, _ = await anyio.to_thread.run_sync(_read_url, server)
                vnc = connect(vnc_port, password)
                try:
                    from vnc_client import framebuffer

                    assert framebuffer(vnc).size == (640, 480)
                finally:
                    vnc.disconnect()
                command = _cmdline(str(_listener(vnc_port)))
                assert "x11vnc" in command and "-viewonly" in command  # --view-only reached the server

        anyio.run(main)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _listener(port: int) -> int:
    """The pid holding the 127.0.0.1 listening socket on ``port``."""
    inode = next(line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[1] == f"0100007F:{port:04X}" and line.split()[3] == "0A")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]" for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process listens on 127.0.0.1:{port}")


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
