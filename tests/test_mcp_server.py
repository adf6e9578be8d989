"""`deskpilot mcp` driven by the official MCP SDK client, over stdio and over streamable HTTP.

The server runs as a real subprocess with a real sandbox and the demo form app;
the client fills and saves the form with the pixel tools, asks the model tools
(scripted GLM-4.5V replies) and runs a task, and the session's run folder is
checked after the client has gone.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import anyio
import pytest
from PIL import Image

pytest.importorskip("mcp")
import httpx2
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from backend_fixtures import free_port
from deskpilot.demo import DEMO_APP
from deskpilot.agent.records.trajectory import load_run

REPLIES = [
    "The Save button <|begin_of_box|>[440,555,560,605]<|end_of_box|>",  # locate
    "It is a contact form.",  # ask
    "Nothing left to do.\n<|begin_of_box|>DONE(answer='saved already')<|end_of_box|>\nMemory:\n[]",  # run_task
]


def _server_args(tmp_path: Path, *extra: str) -> list[str]:
    out = tmp_path / "shared"
    out.mkdir(exist_ok=True)
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(REPLIES))
    app = f"/usr/bin/python3 {DEMO_APP} --save-to {out / 'form.json'}"
    return ["-m", "deskpilot.cli", "mcp", "--size", "1280x800", "--app", app, "--share", str(out),
            "--out", str(tmp_path / "runs"), "--script", str(script), *extra]


def _text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def _use_the_desktop(client: Client, tmp_path: Path, use_ocr: bool = True) -> None:
    names = {t.name for t in (await client.list_tools()).tools}
    assert {"screenshot", "click", "double_click", "right_click", "type", "key", "scroll", "drag", "launch_app",
            "locate", "ask", "run_task"} <= names
    shot = await client.call_tool("screenshot", {})
    image = [c for c in shot.content if c.type == "image"][0]
    assert image.mime_type == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(image.data))).size == (1280, 800)
    # fill and save the form with pixel tools: Name (640, 240), Email (640, 336), Save (640, 464)
    ocr = use_ocr and "click_text" in names  # offered only with the [ocr] extra (slow to load: one test uses it)
    save = ("click_text", {"text": "Save"}) if ocr else ("click", {"x": 640, "y": 464})
    for tool, args in [("click", {"x": 640, "y": 240}), ("type", {"text": "Ada Lovelace"}),
                       ("click", {"x": 640, "y": 336}), ("type", {"text": "ada@example.org"}),
                       ("key", {"keys": "tab"}), save]:
        result = await client.call_tool(tool, args)
        assert not result.is_error, _text(result)
    if ocr:
        found = (await client.call_tool("find_text", {"text": "contact FORM"})).structured_content["result"]
        assert len(found) == 1 and found[0]["text"] == "Contact form"
        missing = await client.call_tool("click_text", {"text": "Nonexistent button"})
        assert missing.is_error and "did not appear" in _text(missing)
    saved = tmp_path / "shared" / "form.json"
    assert json.loads(saved.read_text()) == {"name": "Ada Lovelace", "email": "ada@example.org"}
    outside = await client.call_tool("click", {"x": 5000, "y": 10})
    assert outside.is_error and "outside the 1280x800 screen" in _text(outside)
    bad_key = await client.call_tool("key", {"keys": "ctrl+nosuchkey"})
    assert bad_key.is_error and "nosuchkey" in _text(bad_key)
    located = await client.call_tool("locate", {"description": "the Save button"})
    assert located.structured_content["box"] == [563, 444, 717, 484]
    assert located.structured_content["center"] == [640, 464]
    assert _text(await client.call_tool("ask", {"question": "What is this?"})) == "It is a contact form."
    task = (await client.call_tool("run_task", {"task": "Save the form"})).structured_content
    assert task["status"] == "DONE" and task["answer"] == "saved already"
    assert Path(task["report"]).is_file()


def _session_folder(tmp_path: Path, timeout: float = 15.0) -> Path:
    """The session's run folder, once its end record is written (the server closes it after the client goes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = sorted((tmp_path / "runs").glob("*mcp*"))
        if folders and (folders[0] / "report.html").is_file():
            return folders[0]
        time.sleep(0.1)
    pytest.fail(f"no finished MCP run folder under {tmp_path / 'runs'}")


def _check_recording(folder: Path) -> None:
    run = load_run(folder)
    assert run.end is not None and run.end.reason == "the MCP session ended"
    assert [s.action.type for s in run.steps] == ["click", "type", "click", "type", "key", "click"]
    assert all(s.performed for s in run.steps) and run.steps[0].points == [(640, 240)]
    assert [q.kind for q in run.queries] == ["locate", "ask"]
    calls = [json.loads(line) for line in (folder / "trajectory.jsonl").read_text().splitlines()
             if '"mcp_call"' in line]
    assert [c["tool"] for c in calls][:2] == ["screenshot", "click"]
    assert any(c["error"] and "outside" in c["error"] for c in calls)
    assert (folder / "final.png").is_file() and (folder / "task_001" / "report.html").is_file()


def test_mcp_over_stdio_with_the_sdk_client(tmp_path):
    params = StdioServerParameters(command=sys.executable, args=_server_args(tmp_path), cwd=str(tmp_path),
                                   env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})

    async def main():
        async with Client(params) as client:
            await _use_the_desktop(client, tmp_path)

    anyio.run(main)
    _check_recording(_session_folder(tmp_path))


class McpHttp:
    """A real `deskpilot mcp --transport http` process; its URL and token read from what it prints."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, host: str = "127.0.0.1"):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, *args, "--transport", "http", "--port", str(self.port),
                                      "--host", host], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 60
        self.said = ""
        while "MCP server at" not in self.said:
            line = self.proc.stderr.readline()
            assert line or self.proc.poll() is None, f"the server exited: {self.said}"
            assert time.monotonic() < deadline, f"the server did not start: {self.said}"
            self.said += line
        found = re.search(r"token: (\S+)", self.said)
        self.token = found.group(1) if found else None
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def client(self, url: str | None = None, *, token: str | None = None, headers: dict[str, str] | None = None,
               leave_without_ending: bool = False, mode: str = "legacy", session_ids: list | None = None) -> Client:
        """The SDK client with the bearer token (and any other headers); `session_ids` collects its session id."""
        sent = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}

        async def seen(response) -> None:
            if session_ids is not None and response.headers.get("mcp-session-id"):
                session_ids.append(response.headers["mcp-session-id"])

        http = httpx2.AsyncClient(headers=sent, timeout=httpx2.Timeout(30, read=300), event_hooks={"response": [seen]})
        transport = streamable_http_client(url or self.url, http_client=http, terminate_on_close=not leave_without_ending)
        return Client(transport, mode=mode)

    def xvfbs(self) -> list[int]:
        """The Xvfb processes this server started (its descendants), from /proc."""
        parents, names = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            pid = int(stat.parent.name)
            names[pid] = text[text.index("(") + 1:text.rindex(")")]
            parents[pid] = int(text[text.rindex(")") + 2:].split()[1])
        found = []
        for pid, name in names.items():
            up = parents.get(pid)
            while up not in (None, 0, 1, self.proc.pid):
                up = parents.get(up)
            if up == self.proc.pid and name == "Xvfb":
                found.append(pid)
        return found

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _post(url: str, headers: dict[str, str], host_ip: str | None = None) -> int:
    """The HTTP status of an MCP initialize POST with these headers (raw, no SDK)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                  "clientInfo": {"name": "t", "version": "1"}}})
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    with httpx2.Client(timeout=30) as http:
        return http.post(url, content=body, headers=sent).status_code


def test_mcp_over_http_one_sandbox_per_session_with_a_live_view(tmp_path):
    server = McpHttp(_server_args(tmp_path, "--live"))
    try:
        live = re.search(r"live view: (http://127\.0\.0\.1:\d+/\S+/)", server.said).group(1)

        async def main():
            async with server.client() as client:  # a session id: its own sandbox
                await _use_the_desktop(client, tmp_path, use_ocr=False)
                for _ in range(50):  # frames are grabbed once someone watches
                    state = json.loads(urllib.request.urlopen(live + "state.json", timeout=10).read())
                    if state["frame"] >= 1:
                        break
                    time.sleep(0.1)
                assert state["attached"] and state["frame"] >= 1 and state["width"] == 1280
                # the last thing shown: run_task's agent loop (its own step 1, DONE)
                assert (state["step"], state["action_type"], state["status"]) == (1, "done", "DONE")

        anyio.run(main)
        _check_recording(_session_folder(tmp_path))  # closed when the client ended its session
    finally:
        server.stop()


def test_a_sandbox_that_never_starts_still_ends_its_run_folder(tmp_path):
    from deskpilot.mcp.desk import DeskSession, McpOptions

    desk = DeskSession(McpOptions(size=(640, 480), apps=["/bin/false"], out=tmp_path))

    async def use_and_leave():
        with pytest.raises(Exception, match="exited with code 1"):
            await desk.call("screenshot", {}, desk.screenshot_png)
        await desk.aclose()

    anyio.run(use_and_leave)
    run = load_run(desk.run_dir)
    assert run.end.status.value == "ERROR" and "never started" in run.end.reason
    call = json.loads((desk.run_dir / "trajectory.jsonl").read_text().splitlines()[0])
    assert call["tool"] == "screenshot" and "exited with code 1" in call["error"]
    assert (desk.run_dir / "report.html").is_file()


# -- HTTP: token, desktops' lifetime and number, named desktops, Host headers, launch_app paths --
def _bare_args(tmp_path: Path, *extra: str) -> list[str]:
    """A server without apps (its desktops start fast) recording under tmp_path/runs."""
    return ["-m", "deskpilot.cli", "mcp", "--size", "640x480", "--out", str(tmp_path / "runs"), *extra]


def _wait(condition, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_http_needs_the_bearer_token(tmp_path):
    server = McpHttp(_bare_args(tmp_path))
    try:
        assert server.token and len(server.token) >= 32  # random, printed on stderr like the live URL
        assert _post(server.url, {}) == 401
        assert _post(server.url, {"Authorization": "Bearer " + "x" * len(server.token)}) == 401
        assert _post(server.url, {"Authorization": "Bearer " + server.token[:-1]}) == 401
        assert _post(server.url, {"Authorization": f"Bearer {server.token}"}) == 200

        async def main():
            async with server.client() as client:
                shot = await client.call_tool("screenshot", {})
                assert not shot.is_error and shot.content[0].type == "image"
            with pytest.raises(Exception):  # the SDK client without the token is refused
                async with server.client(token="not-the-token-" * 3) as client:
                    await client.list_tools()

        anyio.run(main)
    finally:
        server.stop()
    assert server.token not in " ".join(server.proc.args)  # never on the command line (`ps` shows it)


def test_http_token_from_the_environment_or_a_file_is_not_printed(tmp_path):
    secret = "s3cret-token-from-the-env-0123456789"
    server = McpHttp(_bare_args(tmp_path), env={"DESKPILOT_MCP_TOKEN": secret})
    try:
        assert server.token is None and secret not in server.said and "$DESKPILOT_MCP_TOKEN" in server.said
        assert _post(server.url, {"Authorization": f"Bearer {secret}"}) == 200
        assert _post(server.url, {}) == 401
    finally:
        server.stop()
    token_file = tmp_path / "token"
    token_file.write_text("file-token-abcdefghijklmnop\n")
    server = McpHttp(_bare_args(tmp_path, "--token-file", str(token_file)))
    try:
        assert server.token is None and "file-token" not in server.said
        assert _post(server.url, {"Authorization": "Bearer file-token-abcdefghijklmnop"}) == 200
    finally:
        server.stop()


def test_mcp_cli_refuses_bad_http_settings_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from deskpilot.cli import app as cli_app

    short = tmp_path / "short"
    short.write_text("abc")
    for extra, said in [(["--port", "70000"], "a port is 1 to 65535"), (["--port", "-1"], "a port is 1 to 65535"),
                        (["--host", "no such host!"], "not an address of this machine"),
                        (["--token-file", str(short)], "at least 16 printable characters"),
                        (["--token-file", str(tmp_path / "missing")], "does not exist"),
                        (["--max-sessions", "0"], "--max-sessions is at least 1"),
                        (["--idle-timeout", "0"], "--idle-timeout is a number of seconds above 0"),
                        (["--session-name", "a b"], "--session-name")]:
        done = CliRunner().invoke(cli_app, [*_bare_args(tmp_path)[2:], "--transport", "http", *extra])
        assert done.exit_code == 2 and said in done.stderr, (extra, done.stderr)
        assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_vanished_clients_desktop_is_closed_after_the_idle_timeout(tmp_path):
    server = McpHttp(_bare_args(tmp_path, "--idle-timeout", "3"))
    try:
        async def leave_without_ending():
            async with server.client(leave_without_ending=True) as client:  # like the Inspector CLI: no DELETE
                assert not (await client.call_tool("screenshot", {})).is_error
                assert len(server.xvfbs()) == 1

        anyio.run(leave_without_ending)
        _wait(lambda: not server.xvfbs(), "the idle desktop's Xvfb to go", timeout=30)
        folder = _wait(lambda: [f for f in (tmp_path / "runs").glob("*mcp*") if (f / "report.html").is_file()],
                       "the run folder to be ended")[0]
        assert "no call for 3 s" in load_run(folder).end.reason

        async def a_busy_client_keeps_its_desktop():
            async with server.client() as client:
                for _ in range(4):  # calls 1 s apart: never 3 s idle
                    assert not (await client.call_tool("screenshot", {})).is_error
                    await anyio.sleep(1.0)
                assert len(server.xvfbs()) == 1
                # now idle: closed, and the session is told so
                await anyio.to_thread.run_sync(lambda: _wait(lambda: not server.xvfbs(), "the idle desktop to go"))
                late = await client.call_tool("screenshot", {})
                assert late.is_error and "start a new MCP session" in _text(late)

        anyio.run(a_busy_client_keeps_its_desktop)
        assert not server.xvfbs()
    finally:
        server.stop()


def test_max_sessions_refuses_one_more_desktop(tmp_path):
    server = McpHttp(_bare_args(tmp_path, "--max-sessions", "1"))
    try:
        async def main():
            first_id: list[str] = []
            async with server.client(session_ids=first_id) as first:
                assert not (await first.call_tool("screenshot", {})).is_error
                async with httpx2.AsyncClient(timeout=30) as raw:  # ending someone's session needs the token too
                    answer = await raw.delete(server.url, headers={"mcp-session-id": first_id[0]})
                    assert answer.status_code == 401
                assert not (await first.call_tool("screenshot", {})).is_error and len(server.xvfbs()) == 1
                async with server.client() as second:
                    refused = await second.call_tool("screenshot", {})
                    assert refused.is_error and "(--max-sessions 1)" in _text(refused)
                    assert len(server.xvfbs()) == 1
            # the first client ended its session: its desktop is closed, so a new one may start
            async with server.client() as third:
                assert not (await third.call_tool("screenshot", {})).is_error
                assert len(server.xvfbs()) == 1

        anyio.run(main)
    finally:
        server.stop()


CLIENT_PROCESS = """
import sys, anyio, httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

url, token, name, calls = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

async def main():
    http = httpx2.AsyncClient(headers={"Authorization": "Bearer " + token, "Deskpilot-Session": name})
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as c:  # ends its session
        for call in calls:
            tool, _, arg = call.partition("=")
            args = {"text": arg} if tool == "type" else dict(zip("xy", map(int, arg.split(","))))
            result = await c.call_tool(tool, args)
            assert not result.is_error, result

anyio.run(main)
"""


def test_a_named_desktop_is_shared_by_client_processes(tmp_path):
    server = McpHttp(_server_args(tmp_path, "--idle-timeout", "60"))
    try:
        def client_process(*calls: str) -> None:
            done = subprocess.run([sys.executable, "-c", CLIENT_PROCESS, server.url, server.token, "team", *calls],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr

        client_process("click=640,240", "type=Ada")  # one process types the name ...
        assert len(server.xvfbs()) == 1
        client_process("click=640,464")  # ... another one, after the first ended its session, saves the same form
        saved = tmp_path / "shared" / "form.json"
        assert json.loads(_wait(saved.is_file, "the saved form") and saved.read_text())["name"] == "Ada"
        assert len(server.xvfbs()) == 1  # one desktop for both

        async def sessionless():  # a client without a session (the session-less protocol) must name one
            async with server.client(mode="auto") as client:
                refused = await client.call_tool("screenshot", {})
                assert refused.is_error and "has no MCP session" in _text(refused)
            async with server.client(mode="auto", headers={"Deskpilot-Session": "team"}) as client:
                assert not (await client.call_tool("screenshot", {})).is_error

        anyio.run(sessionless)
        assert len(server.xvfbs()) == 1
        assert len(list((tmp_path / "runs").glob("*mcp-team*"))) == 1
    finally:
        server.stop()


def test_host_headers_follow_the_listening_address(tmp_path):
    server = McpHttp(_bare_args(tmp_path, "--allowed-host", "desk.example"), host="0.0.0.0")
    try:
        assert "warning: listening on 0.0.0.0" in server.said and "holds the token can drive" in server.said
        other = f"http://127.0.0.2:{server.port}/mcp"  # another address of this machine
        auth = {"Authorization": f"Bearer {server.token}"}
        assert _post(other, auth) == 200  # Host: 127.0.0.2:PORT
        assert _post(other, {**auth, "Host": f"127.0.0.3:{server.port}"}) == 200  # any IP literal
        assert _post(other, {**auth, "Host": f"desk.example:{server.port}"}) == 200  # --allowed-host
        assert _post(other, {**auth, "Host": f"rebound.example:{server.port}"}) == 421  # a name: DNS rebinding
        assert _post(other, {**auth, "Origin": "http://rebound.example"}) == 421
        assert _post(other, {}) == 401

        async def main():
            async with server.client(other) as client:
                assert "screenshot" in {t.name for t in (await client.list_tools()).tools}

        anyio.run(main)
    finally:
        server.stop()
    server = McpHttp(_bare_args(tmp_path), host="127.0.0.2")
    try:
        url = f"http://127.0.0.2:{server.port}/mcp"
        auth = {"Authorization": f"Bearer {server.token}"}
        assert "warning" not in server.said  # loopback only
        assert _post(url, auth) == 200
        assert _post(url, {**auth, "Host": f"127.0.0.3:{server.port}"}) == 421  # not the address it listens on
    finally:
        server.stop()


READER = """
import pathlib, sys
here = pathlib.Path(__file__).parent
try:
    said = "read: " + pathlib.Path(sys.argv[1]).read_text()
except Exception as exc:
    said = "error: " + type(exc).__name__
(here / "result.txt").write_text(said)
"""


def test_launch_app_binds_no_host_path(tmp_path):
    secret_dir = tmp_path / "root-only"
    secret_dir.mkdir(mode=0o700)
    (secret_dir / "secret.txt").write_text("TOP-SECRET-LINE")
    (secret_dir / "secret.txt").chmod(0o600)
    server = McpHttp(_server_args(tmp_path))
    share = tmp_path / "shared"
    (share / "reader.py").write_text(READER)
    (share / "link").symlink_to(secret_dir)  # what an app in the sandbox could plant
    try:
        async def main():
            async with server.client() as client:
                outside = await client.call_tool("launch_app", {"command": f"python3 {secret_dir}/secret.txt"})
                assert outside.is_error and "is outside the shared folders" in _text(outside)
                assert len(_text(outside).splitlines()) == 1
                climbing = await client.call_tool("launch_app", {"command": "python3 ../root-only/secret.txt"})
                assert climbing.is_error and "outside the shared folders" in _text(climbing)
                for command in [f"/usr/bin/python3 {share}/reader.py {share}/link/secret.txt",  # absolute, via link
                                "python3 reader.py link/secret.txt"]:  # relative: resolved in the share
                    (share / "result.txt").unlink(missing_ok=True)
                    started = await client.call_tool("launch_app", {"command": command})
                    assert not started.is_error, _text(started)
                    assert f"{share}/reader.py" in _text(started)
                    said = _wait(lambda: (share / "result.txt").is_file() and (share / "result.txt").read_text(),
                                 "the reader's result")
                    assert said.startswith("error:") and "TOP-SECRET" not in said

        anyio.run(main)
    finally:
        server.stop()
    folder = _session_folder(tmp_path)
    assert "TOP-SECRET" not in (folder / "trajectory.jsonl").read_text()


def test_client_commands_name_only_paths_in_the_shares(tmp_path):
    from deskpilot.errors import UsageError
    from deskpilot.mcp.launch import client_argv

    share = tmp_path / "share"
    (share / "sub").mkdir(parents=True)
    (share / "notes.txt").write_text("x")
    (share / "link").symlink_to("/root")  # a link planted by an app: named, never followed on the host
    s = str(share)
    assert client_argv("xterm -e bash", [s]) == ["xterm", "-e", "bash"]
    assert client_argv("mousepad notes.txt", [s]) == ["mousepad", f"{s}/notes.txt"]
    assert client_argv("mousepad sub/new.txt", [s]) == ["mousepad", f"{s}/sub/new.txt"]
    assert client_argv("cat link/.bashrc", [s]) == ["cat", f"{s}/link/.bashrc"]
    assert client_argv(f"cat {s}/sub/../notes.txt /etc/hostname", [s]) == ["cat", f"{s}/notes.txt", "/etc/hostname"]
    assert client_argv("chromium --app=https://example.org/a/b", [s])[1] == "--app=https://example.org/a/b"
    for command, said in [("cat /root/.bashrc", "is outside the shared folders"),
                          (f"cat {s}/../elsewhere.txt", "is outside the shared folders"),
                          ("cat ../share/../../x", "is outside the shared folders"),
                          ("/root/tool", "is outside the shared folders"), ("~/x", "is outside"),
                          ("no-such-program-here", "not installed"), ("", "empty"), ("'unclosed", "cannot read")]:
        with pytest.raises(UsageError, match=said):
            client_argv(command, [s])
    with pytest.raises(UsageError, match="without --share"):
        client_argv("cat /tmp/x", [])
    assert client_argv("mousepad notes.txt", []) == ["mousepad", "notes.txt"]  # no share: a plain word


def test_a_desktop_is_not_closed_for_idleness_in_the_middle_of_a_call(tmp_path):
    from deskpilot.mcp.desk import DeskSession, McpOptions, SessionRules
    from deskpilot.mcp.server import Desks

    desks = Desks(McpOptions(size=(320, 240), out=tmp_path), SessionRules(http=True, idle_timeout_s=0.3))
    desk = desks._desks["mcp:slow"] = DeskSession(desks.options)
    started, finished = threading.Event(), threading.Event()

    def slow_call():  # on the desk's thread, sandbox open: longer than the idle timeout
        started.set()
        time.sleep(1.5)
        finished.set()
        return desk.screenshot_png()

    async def main():
        async with anyio.create_task_group() as tg:
            tg.start_soon(desk.call, "slow", {}, slow_call)
            await anyio.to_thread.run_sync(started.wait)
            sweeps = 0
            while not finished.is_set():  # the reaper's sweeps while the call runs
                assert await desks.reap(0.3) == []
                sweeps += 1
                await anyio.sleep(0.1)
            assert sweeps >= 3
        assert desks.sessions == [desk]  # the call is over: idle from now on
        await anyio.sleep(0.4)
        assert await desks.reap(0.3) == ["mcp:slow"] and desks.sessions == []

    anyio.run(main)
    assert "no call for 0.3 s" in load_run(desk.run_dir).end.reason
