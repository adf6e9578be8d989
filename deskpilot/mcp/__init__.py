"""The MCP server: deskpilot's sandboxed desktop as tools for any MCP client (the `[mcp]` extra)."""

from deskpilot.mcp.desk import DeskSession, McpOptions

__all__ = ["DeskSession", "McpOptions"]
