"""find_text / click_text for MCP clients: reading the screen with OCR, no model needed (the [ocr] extra)."""

from __future__ import annotations

import importlib.util
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

if importlib.util.find_spec("rapidocr") is None:  # no OCR engine: the tools are not offered at all
    raise ImportError("the [ocr] extra is not installed")


def register(app: MCPServer, desks, run) -> None:
    @app.tool()
    async def find_text(text: str, ctx: Context) -> list[dict[str, Any]]:
        """Where `text` is on the screen (OCR; case and spacing ignored): boxes and centres in pixels, top to bottom."""
        return await run(desks, ctx, "find_text", {"text": text}, lambda d: d.find_text(text))

    @app.tool()
    async def click_text(text: str, ctx: Context, index: int = 0, timeout: float = 0.0) -> dict[str, Any]:
        """Click the middle of `text` on the screen (OCR); `index` picks among several matches, top to bottom;
        `timeout` seconds to wait for it to appear."""
        return await run(desks, ctx, "click_text", {"text": text, "index": index, "timeout": timeout},
                         lambda d: d.click_text(text, index=index, timeout=timeout))
