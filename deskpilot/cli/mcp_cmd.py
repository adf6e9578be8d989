"""`deskpilot mcp`: serve a sandboxed desktop to MCP clients (Claude Desktop, IDEs, agents)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from deskpilot.cli.live_option import live_option, live_port_option, view_only_option, vnc_option, vnc_settings
from deskpilot.cli.live_option import live_port as live_port_of
from deskpilot.cli.run import _user_errors, console, fail
from deskpilot.agent.config.spec import load_config
from deskpilot.errors import UsageError


def mcp(
    transport: str = typer.Option("stdio", help="stdio (the client starts this command) or http (streamable HTTP)"),
    host: str = typer.Option("127.0.0.1", help="Address to listen on with --transport http (0.0.0.0: every "
                             "address; anyone with the token can then drive the desktop)"),
    port: int = typer.Option(8765, help="Port to listen on with --transport http"),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the bearer token HTTP "
                                              "clients must send [default: $DESKPILOT_MCP_TOKEN, else a random "
                                              "one printed at start]"),
    idle_timeout: float = typer.Option(300.0, "--idle-timeout", help="HTTP: close a desktop after this many "
                                       "seconds without a tool call"),
    max_sessions: int = typer.Option(4, "--max-sessions", help="HTTP: desktops open at once at most; more "
                                     "are refused"),
    session_name: Optional[str] = typer.Option(None, "--session-name", help="HTTP: requests without a "
                                               "'Deskpilot-Session: NAME' header share the desktop NAME, which "
                                               "outlives client processes (for clients that reconnect per call)"),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="HTTP: another name clients may use in "
                                           "the Host header (repeatable), e.g. the machine's DNS name"),
    size: Optional[str] = typer.Option(None, help="Screen size WIDTHxHEIGHT [default: 1280x800]"),
    app: list[str] = typer.Option([], "--app", help="App to start in each sandbox (repeatable), e.g. --app xterm"),
    share: list[Path] = typer.Option([], "--share", help="Host folder bound read-write at the same path (repeatable)"),
    isolation: Optional[str] = typer.Option(None, help="bwrap (default) or none"),
    network: Optional[bool] = typer.Option(None, "--network", help="Let apps reach the network"),
    out: Path = typer.Option(Path("runs"), help="Folder for the sessions' run folders"),
    base_url: Optional[str] = typer.Option(None, help="GUI model server for the locate, ask and run_task tools"),
    model: Optional[str] = typer.Option(None, help="Served model name [default: glm-4.5v]"),
    flavor: Optional[str] = typer.Option(None, help="Server kind: vllm, sglang, zai, openai, transformers"),
    thinking: Optional[bool] = typer.Option(None, "--thinking/--no-thinking", help="Thinking mode for run_task [default: on]"),
    max_steps: Optional[int] = typer.Option(None, help="Step limit of run_task [default: 30]"),
    script: Optional[Path] = typer.Option(None, help="JSON list of recorded replies instead of a model (tests, demos)"),
    config: Optional[Path] = typer.Option(None, help="TOML config file [default: ./deskpilot.toml if present]"),
    live: Optional[int] = live_option(),
    live_port: int = live_port_option(),
    vnc: Optional[int] = vnc_option("each client's sandbox"),
    view_only: bool = view_only_option(),
) -> None:
    """Serve a sandboxed desktop as MCP tools: screenshot, click, type, key, scroll, drag, launch_app,
    and with a model (--base-url) locate, ask and run_task. Every session is recorded in a run folder."""
    from deskpilot.mcp.desk import McpOptions

    try:
        if transport not in ("stdio", "http"):
            raise typer.BadParameter("--transport is stdio or http")
        http = _http_settings(transport, host, port, token_file, idle_timeout, max_sessions, session_name)
        cfg = load_config({"base_url": base_url, "model": model, "flavor": flavor, "thinking": thinking,
                           "max_steps": max_steps, "size": size or "1280x800", "script": script,
                           "isolation": isolation, "network": network, "shares": share, "apps": app,
                           **vnc_settings(vnc, view_only)},
                          config_file=config)
        desktop = cfg.desktop
        if cfg.backend.script is not None and not cfg.backend.script.is_file():
            raise FileNotFoundError(f"script file {cfg.backend.script} does not exist")
        for folder in desktop.shares:
            if not folder.is_dir():
                raise NotADirectoryError(f"shared folder {folder} does not exist (or is not a folder)")
        from deskpilot.agent.desk.session import app_from_command

        for command in desktop.apps:
            app_from_command(command)  # fail now, not at the client's first call
        options = McpOptions(size=cfg.screen, apps=desktop.apps, isolation=desktop.isolation, network=desktop.network,
                             shares=[str(p.resolve()) for p in desktop.shares], out=out, run_config=cfg)
    except typer.BadParameter as err:
        raise fail(str(err)) from None
    except _user_errors() as err:
        raise fail(str(err)) from None
    try:
        from deskpilot.mcp import server
    except ImportError:
        raise fail("the MCP server needs the [mcp] extra: pip install 'deskpilot[mcp]'") from None
    live_view = None
    if live is not None:
        from deskpilot.live import LiveView

        try:
            live_view = LiveView(port=live_port_of(live, live_port)).start()
        except _user_errors() as err:  # a busy port: one line, like run --live
            raise fail(str(err)) from None
        options.live = live_view
        console.print(f"live view: {live_view.url}", soft_wrap=True)
    try:
        if transport == "stdio":
            console.print(f"deskpilot MCP server on stdio; sessions are recorded under {out}", soft_wrap=True)
            server.serve_stdio(options)
        else:
            assert http is not None
            rules, (token, origin) = http
            if not is_loopback(host):
                console.print(f"[yellow]warning:[/yellow] listening on {host}: anyone who can reach port {port} "
                              "and holds the token can drive the desktop (see the screen, type, start apps)",
                              soft_wrap=True)
            said = f"token: {token}" if origin == "random" else f"token from {origin}"

            def ready(url: str) -> None:
                console.print(f"deskpilot MCP server at {url}; {said} (send 'Authorization: Bearer TOKEN'); "
                              f"sessions are recorded under {out}", soft_wrap=True, markup=False)

            server.serve_http(options, rules, token, host=host, port=port, allowed_hosts=tuple(allowed_host),
                              on_ready=ready)
    except KeyboardInterrupt:
        pass
    finally:
        if live_view is not None:
            live_view.finish(linger=0)  # the server is shutting down: nothing to show


def is_loopback(host: str) -> bool:
    from deskpilot.mcp.access import is_loopback as loopback

    return loopback(host)


def _http_settings(transport: str, host: str, port: int, token_file: Optional[Path], idle_timeout: float,
                   max_sessions: int, session_name: Optional[str]):
    """(SessionRules, (token, where from)) for --transport http, checked; None for stdio."""
    import math
    import socket

    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: a port is 1 to 65535")
    if transport != "http":
        for given, flag in ((token_file, "--token-file"), (session_name, "--session-name")):
            if given is not None:
                raise UsageError(f"{flag} is for --transport http")
        return None
    if not (math.isfinite(idle_timeout) and idle_timeout > 0):
        raise UsageError("--idle-timeout is a number of seconds above 0")
    if max_sessions < 1:
        raise UsageError("--max-sessions is at least 1")
    try:
        socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        raise UsageError(f"--host {host!r} is not an address of this machine (e.g. 127.0.0.1 or 0.0.0.0)") from None
    from deskpilot.mcp.access import load_token
    from deskpilot.mcp.desk import SessionRules, check_session_name

    if session_name is not None:
        try:
            check_session_name(session_name)
        except ValueError as err:
            raise UsageError(f"--session-name: {err}") from None
    rules = SessionRules(http=True, idle_timeout_s=idle_timeout, max_sessions=max_sessions, session_name=session_name)
    return rules, load_token(token_file)
