"""``network=True`` gives the apps the outside world, never the host's loopback (issue 26).

A listener on the host's 127.0.0.1 stands for a local service (the MCP
server, a model server); a listener in a network namespace this test makes,
joined to the host by a veth pair, stands for "outside". A real app in a
real sandbox tries both. Traffic goes only to this machine and to the
namespace made here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from deskpilot.sandbox import Sandbox

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("slirp4netns") or not shutil.which("ip"),
    reason="the apps' own network namespace (slirp4netns) is made when deskpilot runs as root")

PROBE = textwrap.dedent("""
    import json, socket, sys
    seen = {}
    for target in sys.argv[1:]:
        host, port = target.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=5) as conn:
                seen[target] = conn.recv(100).decode()
        except OSError as exc:
            seen[target] = exc.__class__.__name__
    print(json.dumps(seen), flush=True)
    import tkinter
    root = tkinter.Tk()
    root.title("net-probe")
    root.mainloop()
""")


@pytest.fixture
def host_listener():
    """A service on the host's loopback only, answering every connection with a greeting."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"host-loopback-service")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(5)


@pytest.fixture
def outside():
    """A network namespace joined to the host by a veth pair, with a listener: the 'outside world'."""
    tag = secrets.token_hex(3)
    name, host_end, ns_end = f"dpout{tag}", f"dph{tag}", f"dpn{tag}"
    net = f"10.231.{int(tag[:2], 16)}"
    ip = shutil.which("ip")
    run = lambda *args: subprocess.run([ip, *args], check=True, capture_output=True)  # noqa: E731
    run("netns", "add", name)
    try:
        run("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        run("link", "set", ns_end, "netns", name)
        run("addr", "add", f"{net}.1/30", "dev", host_end)
        run("link", "set", host_end, "up")
        run("netns", "exec", name, "ip", "addr", "add", f"{net}.2/30", "dev", ns_end)
        run("netns", "exec", name, "ip", "link", "set", ns_end, "up")
        code = ("import socket, sys\n"
                f"s = socket.create_server(('{net}.2', 0))\n"
                "print(s.getsockname()[1], flush=True)\n"
                "while True:\n"
                "    c, _ = s.accept()\n"
                "    c.sendall(b'outside-service')\n"
                "    c.close()\n")
        server = subprocess.Popen([ip, "netns", "exec", name, sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  text=True)
        try:
            port = int(server.stdout.readline())  # bound and listening
            yield f"{net}.2", port
        finally:
            server.kill()
            server.wait()
    finally:
        subprocess.run([ip, "link", "del", host_end], capture_output=True)
        subprocess.run([ip, "netns", "del", name], capture_output=True)


def _probe(tmp_path: Path, sb: Sandbox, *targets: str) -> dict[str, str]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    from deskpilot.sandbox import Bind

    app = sb.launch(["/usr/bin/python3", str(script), *targets], binds=[Bind(host=tmp_path)])
    sb.wait_for_window("net-probe", timeout=30)  # X works from the apps' own network namespace too
    return json.loads(app.stdout_path.read_text())


def test_network_apps_reach_outside_but_not_the_hosts_loopback(tmp_path, host_listener, outside):
    out_host, out_port = outside
    loopback = f"127.0.0.1:{host_listener}"
    gateway = f"10.0.2.2:{host_listener}"  # slirp4netns's way to the host's loopback, unless disabled
    far = f"{out_host}:{out_port}"
    with Sandbox((320, 240), network=True) as sb:
        seen = _probe(tmp_path, sb, loopback, gateway, far)
        conf = sb.dir / "resolv.conf"
        resolv = conf.read_text() if conf.exists() else None
    assert seen[far] == "outside-service", seen
    assert seen[loopback] in ("ConnectionRefusedError", "OSError"), seen
    assert seen[gateway] != "host-loopback-service", seen
    assert resolv == "nameserver 10.0.2.3\n"


def test_without_network_nothing_is_reachable(tmp_path, host_listener, outside):
    out_host, out_port = outside
    with Sandbox((320, 240)) as sb:
        seen = _probe(tmp_path, sb, f"127.0.0.1:{host_listener}", f"{out_host}:{out_port}")
    assert "host-loopback-service" not in seen.values() and "outside-service" not in seen.values(), seen
