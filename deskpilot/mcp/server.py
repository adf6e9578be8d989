"""`deskpilot mcp`: the sandboxed desktop as tools for any MCP client (official MCP SDK).

Which desktop a tool call drives:

* over stdio a client owns the server process: one sandbox, living as long
  as the process;
* over streamable HTTP each MCP session (the `mcp-session-id` header) gets its
  own sandbox, closed when the client ends the session (HTTP DELETE), when it
  has had no call for `--idle-timeout` seconds (clients that vanish without
  ending their session, as the MCP Inspector's CLI does on every call), or
  when the server stops;
* a named desktop (the `Deskpilot-Session: NAME` header, or `--session-name`
  for requests without that header) is shared by every request naming it and
  outlives client processes: for clients that reconnect per call. It closes
  after `--idle-timeout` too;
* over HTTP a request with neither a session nor a name (the session-less
  protocol revision) is refused: two clients would silently share one screen.

At most `--max-sessions` sandboxes are open at once; beyond that a call is
refused with one line saying so.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from deskpilot.actions.models import Click, DoubleClick, Drag, Key, Scroll, Type
from deskpilot.mcp.desk import DeskSession, McpOptions, SessionRules, check_session_name

INSTRUCTIONS = (
    "A virtual Linux desktop in a sandbox. Coordinates are screen pixels from the top-left corner; "
    "call `screenshot` to see the screen and its size. Actions wait until the screen stops changing."
)
SESSION_HEADER = "deskpilot-session"  # names a desktop shared across client processes


class Desks:
    """The open DeskSessions of a server, by key: 'mcp:SESSION-ID', 'name:NAME', or None (stdio)."""

    def __init__(self, options: McpOptions, rules: SessionRules | None = None):
        self.options = options
        self.rules = rules or SessionRules()
        self._desks: dict[str | None, DeskSession] = {}
        self._expired: set[str] = set()  # MCP sessions whose desktop was closed for idleness

    def key_for(self, ctx: Context | None) -> str | None:
        """The desktop a request belongs to (rules in the module docstring)."""
        if not self.rules.http:
            return None
        request = ctx.request_context.request if ctx is not None else None
        headers = getattr(request, "headers", None) or {}
        name = headers.get(SESSION_HEADER) or self.rules.session_name
        if name:
            try:
                return f"name:{check_session_name(name)}"
            except ValueError as err:
                raise ToolError(f"{SESSION_HEADER} header: {err}") from None
        sid = headers.get("mcp-session-id")
        if sid:
            return f"mcp:{sid}"
        raise ToolError("this request has no MCP session, and each client gets its own desktop: connect with a "
                        f"session (the initialize handshake), or name a shared desktop with the '{SESSION_HEADER}: "
                        "NAME' header (or start the server with --session-name NAME)")

    def for_context(self, ctx: Context | None) -> DeskSession:
        key = self.key_for(ctx)
        if key is not None and key in self._expired:
            raise ToolError(f"this MCP session's desktop was closed after {self.rules.idle_timeout_s:g} s without a "
                            "call (--idle-timeout); start a new MCP session")
        desk = self._desks.get(key)
        if desk is None:
            limit = self.rules.max_sessions
            if limit is not None and len(self._desks) >= limit:
                raise ToolError(f"{len(self._desks)} desktops are open, the most this server allows "
                                f"(--max-sessions {limit}): end a session, or wait until one has had no call "
                                f"for {self.rules.idle_timeout_s:g} s (--idle-timeout), and try again")
            name = key[len("name:"):] if key and key.startswith("name:") else None
            desk = self._desks[key] = DeskSession(self.options, name=name)
        return desk

    async def reap(self, max_idle_s: float) -> list[str | None]:
        """Close the desktops without a call for `max_idle_s` (none in the middle of a call)."""
        def idle(desk: DeskSession) -> bool:
            return desk.busy == 0 and time.monotonic() - desk.last_used > max_idle_s

        closed: list[str | None] = []
        for key in [k for k, desk in list(self._desks.items()) if idle(desk)]:
            desk = self._desks.get(key)
            if desk is None or not idle(desk):  # a call came in while an earlier desktop was closing
                continue
            if key is not None and key.startswith("mcp:"):
                self._expired.add(key)
            closed.append(key)
            await self.close(key, f"closed after no call for {max_idle_s:g} s (--idle-timeout)")
        return closed

    async def close(self, key: str | None, reason: str = "the MCP session ended") -> None:
        desk = self._desks.pop(key, None)
        if desk is not None:
            await desk.aclose(reason)

    async def close_all(self) -> None:
        for key in list(self._desks):
            await self.close(key, "the MCP session ended" if key is None else "the MCP server stopped")

    @property
    def sessions(self) -> list[DeskSession]:
        return list(self._desks.values())


async def _run(desks: Desks, ctx: Context, tool: str, args: dict[str, Any], fn, summary=None):
    desk = desks.for_context(ctx)
    try:
        return await desk.call(tool, args, lambda: fn(desk), summary)
    except ToolError:
        raise
    except Exception as exc:  # every failure reaches the client as one readable line
        raise ToolError(f"{tool} failed: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
    return " ".join(str(exc).split()) or type(exc).__name__


def build_server(options: McpOptions, rules: SessionRules | None = None,
                 token: str | None = None, url: str = "http://127.0.0.1") -> tuple[MCPServer, Desks]:
    """The MCP server with its tools, and the registry of per-client sandboxes.

    With a `token`, every HTTP request needs `Authorization: Bearer TOKEN`
    (the SDK's bearer-auth hook answers 401 otherwise).
    """
    auth: dict[str, Any] = {}
    if token is not None:
        from mcp.server.auth.settings import AuthSettings

        from deskpilot.mcp.access import StaticTokenVerifier

        # the issuer URL is required by the settings model; with no OAuth provider it is never served
        auth = {"token_verifier": StaticTokenVerifier(token),
                "auth": AuthSettings(issuer_url=url, resource_server_url=None)}
    # WARNING: the SDK logs every session opened at INFO (one per call from clients that reconnect per call)
    app = MCPServer("deskpilot", instructions=INSTRUCTIONS, log_level="WARNING", **auth)
    desks = Desks(options, rules)

    def act(name: str, action_factory, args: dict[str, Any]):
        async def call(ctx: Context):
            def do(desk: DeskSession) -> str:
                action = action_factory()
                return desk.act(action, f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})")

            return await _run(desks, ctx, name, args, do)

        return call

    @app.tool()
    async def screenshot(ctx: Context) -> Image:
        """The current screen as a PNG image (its size is the screen size in pixels)."""
        png = await _run(desks, ctx, "screenshot", {}, lambda d: d.screenshot_png(), lambda r: f"{len(r)} bytes")
        return Image(data=png, format="png")

    @app.tool()
    async def click(x: int, y: int, ctx: Context, button: Literal["left", "right", "middle"] = "left") -> str:
        """Click at pixel (x, y) with the left (default), right or middle button."""
        return await act("click", lambda: Click(x=x, y=y, button=button), {"x": x, "y": y, "button": button})(ctx)

    @app.tool()
    async def double_click(x: int, y: int, ctx: Context) -> str:
        """Double-click with the left button at pixel (x, y)."""
        return await act("double_click", lambda: DoubleClick(x=x, y=y), {"x": x, "y": y})(ctx)

    @app.tool()
    async def right_click(x: int, y: int, ctx: Context) -> str:
        """Click with the right button at pixel (x, y), e.g. to open a context menu."""
        return await act("right_click", lambda: Click(x=x, y=y, button="right"), {"x": x, "y": y})(ctx)

    @app.tool(name="type")
    async def type_text(text: str, ctx: Context) -> str:
        """Type text (any Unicode) at the keyboard focus; a newline presses Enter."""
        return await act("type", lambda: Type(text=text), {"text": text})(ctx)

    @app.tool()
    async def key(keys: str, ctx: Context) -> str:
        """Press a key or a chord, e.g. 'enter', 'ctrl+s', 'alt+f4', 'ctrl+shift+t'."""
        return await act("key", lambda: Key.model_validate({"keys": keys}), {"keys": keys})(ctx)

    @app.tool()
    async def scroll(x: int, y: int, ctx: Context, direction: Literal["up", "down", "left", "right"] = "down",
                     amount: int = 5) -> str:
        """Scroll with the mouse wheel at pixel (x, y): `amount` wheel clicks in `direction`."""
        return await act("scroll", lambda: Scroll(x=x, y=y, direction=direction, amount=amount),
                         {"x": x, "y": y, "direction": direction, "amount": amount})(ctx)

    @app.tool()
    async def drag(x: int, y: int, to_x: int, to_y: int, ctx: Context) -> str:
        """Press the left button at (x, y), move to (to_x, to_y), release."""
        return await act("drag", lambda: Drag(x=x, y=y, to_x=to_x, to_y=to_y),
                         {"x": x, "y": y, "to_x": to_x, "to_y": to_y})(ctx)

    @app.tool()
    async def launch_app(command: str, ctx: Context) -> str:
        """Start a program in the sandbox, e.g. 'xterm' or 'mousepad notes.txt' (no shell; no network).
        Paths are those of the shared folders: relative ones resolve inside them; others are refused."""
        return await _run(desks, ctx, "launch_app", {"command": command}, lambda d: d.launch(command))

    backend = getattr(options.run_config, "backend", None)
    if backend is not None and (backend.base_url or backend.script):
        _model_tools(app, desks)
    _ocr_tools(app, desks)
    from deskpilot.mcp.a11y_tools import register as a11y_tools

    a11y_tools(app, desks, _run)  # accessibility_tree, click_element, fill_element
    return app, desks


def _model_tools(app: MCPServer, desks: Desks) -> None:
    """Tools that ask the GUI model (GLM-4.5V): only when `deskpilot mcp` was given one."""

    @app.tool()
    async def locate(description: str, ctx: Context) -> dict[str, Any]:
        """Ask the GUI model where something is on the screen: its pixel box and centre."""
        box = await _run(desks, ctx, "locate", {"description": description}, lambda d: d.locate(description))
        x1, y1, x2, y2 = box
        return {"box": box, "center": [(x1 + x2) // 2, (y1 + y2) // 2]}

    @app.tool()
    async def ask(question: str, ctx: Context) -> str:
        """Ask the GUI model a question about what the screen shows."""
        return await _run(desks, ctx, "ask", {"question": question}, lambda d: d.ask(question))

    @app.tool()
    async def run_task(task: str, ctx: Context, max_steps: int | None = None) -> dict[str, Any]:
        """Let the GUI agent do a whole task on this desktop; returns status, answer and the report's path."""
        return await _run(desks, ctx, "run_task", {"task": task, "max_steps": max_steps},
                          lambda d: d.run_task(task, max_steps))


def _ocr_tools(app: MCPServer, desks: Desks) -> None:
    """find_text / click_text, when the OCR extra is installed and the OCR module exists."""
    try:
        from deskpilot.mcp.ocr_tools import register
    except ImportError:
        return
    register(app, desks, _run)


# -- transports ---------------------------------------------------------------------
def serve_stdio(options: McpOptions) -> None:
    """Serve one client on stdin/stdout; its sandbox closes when the client goes."""
    import anyio

    app, desks = build_server(options)

    async def main() -> None:
        try:
            await app.run_stdio_async()
        finally:
            await desks.close_all()

    anyio.run(main)


def http_app(options: McpOptions, rules: SessionRules, token: str, *, host: str = "127.0.0.1", port: int = 8765,
             path: str = "/mcp", allowed_hosts: tuple[str, ...] = ()):
    """An ASGI app: Host check, bearer token, the MCP endpoint; a session's sandbox closes when the client ends it."""
    from mcp.server.transport_security import TransportSecuritySettings

    from deskpilot.mcp.access import HostRule, host_guard

    app, desks = build_server(options, rules, token, url=f"http://{_url_host(host)}:{port}")
    inner = app.streamable_http_app(
        streamable_http_path=path, host=host, session_idle_timeout=rules.idle_timeout_s,
        # Host and Origin are checked by host_guard (it follows --host, 0.0.0.0 included)
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))

    async def asgi(scope, receive, send):
        sid = dict(scope["headers"]).get(b"mcp-session-id") if scope["type"] == "http" else None
        if sid and scope["method"] == "DELETE":

            async def close_first(message):
                # only a session the SDK really ended (token and owner checked); closed before the
                # client hears so, so a client ending one session and starting another finds room
                if message["type"] == "http.response.start" and message["status"] < 400:
                    await desks.close(f"mcp:{sid.decode('latin-1')}")
                await send(message)

            await inner(scope, receive, close_first)
            return
        await inner(scope, receive, send)

    return host_guard(asgi, HostRule(host, allowed_hosts)), desks


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve_http(options: McpOptions, rules: SessionRules, token: str, *, host: str = "127.0.0.1", port: int = 8765,
               path: str = "/mcp", allowed_hosts: tuple[str, ...] = (), on_ready=None) -> None:
    """Serve MCP over streamable HTTP until interrupted; every sandbox is closed on the way out."""
    import uvicorn

    asgi, desks = http_app(options, rules, token, host=host, port=port, path=path, allowed_hosts=allowed_hosts)
    server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning", lifespan="on"))

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready(f"http://{_url_host(host)}:{port}{path}")

        async def reaper(idle_s: float) -> None:
            while True:
                await asyncio.sleep(max(0.2, min(idle_s / 4, 15.0)))
                await desks.reap(idle_s)

        sweeping = asyncio.create_task(reaper(rules.idle_timeout_s)) if rules.idle_timeout_s else None
        try:
            await task
        finally:
            if sweeping is not None:
                sweeping.cancel()
            await desks.close_all()

    asyncio.run(main())
