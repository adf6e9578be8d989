"""`deskpilot mcp`: the sandboxed desktop as tools for any MCP client (official MCP SDK).

One sandbox per client: over stdio a client owns the server process, so the
sandbox lives as long as the process; over streamable HTTP each MCP session
(the `mcp-session-id` header) gets its own sandbox, closed when the client
ends the session (HTTP DELETE) or the server stops. Stateless requests
(clients speaking the session-less protocol revision) share one sandbox.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from deskpilot.actions.models import Click, DoubleClick, Drag, Key, Scroll, Type
from deskpilot.mcp.desk import DeskSession, McpOptions

INSTRUCTIONS = (
    "A virtual Linux desktop in a sandbox. Coordinates are screen pixels from the top-left corner; "
    "call `screenshot` to see the screen and its size. Actions wait until the screen stops changing."
)


class Desks:
    """The open DeskSessions of a server, by MCP session id (None: session-less requests)."""

    def __init__(self, options: McpOptions):
        self.options = options
        self._desks: dict[str | None, DeskSession] = {}
        self._used: dict[str | None, float] = {}

    def for_context(self, ctx: Context | None) -> DeskSession:
        key = None
        if ctx is not None:
            request = ctx.request_context.request
            headers = getattr(request, "headers", None)
            key = headers.get("mcp-session-id") if headers is not None else None
        if key not in self._desks:
            self._desks[key] = DeskSession(self.options)
        self._used[key] = time.monotonic()
        return self._desks[key]

    async def reap(self, max_idle_s: float) -> list[str | None]:
        """Close the sandboxes of sessions unused for `max_idle_s` (clients that vanished without ending them)."""
        now = time.monotonic()
        idle: list[str | None] = [key for key in list(self._desks) if key is not None and now - self._used.get(key, now) > max_idle_s]
        for key in idle:
            await self.close(key)
        return idle

    async def close(self, key: str | None) -> None:
        desk = self._desks.pop(key, None)
        self._used.pop(key, None)
        if desk is not None:
            await desk.aclose()

    async def close_all(self) -> None:
        for key in list(self._desks):
            await self.close(key)

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


def build_server(options: McpOptions) -> tuple[MCPServer, Desks]:
    """The MCP server with its tools, and the registry of per-client sandboxes."""
    app = MCPServer("deskpilot", instructions=INSTRUCTIONS)
    desks = Desks(options)

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
        """Start a program in the sandbox, e.g. 'xterm' or 'gedit notes.txt' (no shell; no network)."""
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


def http_app(options: McpOptions, path: str = "/mcp"):
    """An ASGI app: the MCP endpoint, closing a session's sandbox when the client ends the session."""
    app, desks = build_server(options)
    inner = app.streamable_http_app(streamable_http_path=path)

    async def asgi(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "DELETE":
            sid = dict(scope["headers"]).get(b"mcp-session-id")
            await inner(scope, receive, send)
            if sid:
                await desks.close(sid.decode("latin-1"))
            return
        await inner(scope, receive, send)

    return asgi, desks


SESSION_IDLE_S = 30 * 60  # the SDK forgets a silent session after this long; its sandbox goes too


def serve_http(options: McpOptions, host: str = "127.0.0.1", port: int = 8765, path: str = "/mcp",
               on_ready=None) -> None:
    """Serve MCP over streamable HTTP until interrupted; every sandbox is closed on the way out."""
    import uvicorn

    asgi, desks = http_app(options, path)
    server = uvicorn.Server(uvicorn.Config(asgi, host=host, port=port, log_level="warning", lifespan="on"))

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready(f"http://{host}:{port}{path}")

        async def reaper() -> None:
            while True:
                await asyncio.sleep(60)
                await desks.reap(SESSION_IDLE_S)

        sweeping = asyncio.create_task(reaper())
        try:
            await task
        finally:
            sweeping.cancel()
            await desks.close_all()

    asyncio.run(main())
