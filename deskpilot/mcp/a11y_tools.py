"""accessibility_tree / click_element / fill_element: the apps' widgets for MCP clients, no model or OCR.

An element is named like a Playwright locator: ``role`` (ARIA or AT-SPI
name), ``name`` (case-insensitive substring unless ``exact``), ``text`` or
``label``; ``index`` picks one of several matches (else two matches is an
error listing them). The click and the typing are recorded steps, the same
as the click and type tools.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer


def _locator(desk, role: str | None, name: str | None, text: str | None, label: str | None, exact: bool,
             index: int | None):  # fmt: skip
    from deskpilot.agent.desk.locator import Locator, role_query
    from deskpilot.errors import UsageError
    from deskpilot.perception.a11y import Query

    if role is None and name is None and text is None and label is None:
        raise UsageError("name the element: give a role, name, text or label")
    query = role_query(role, name, exact) if role else Query(name=name, text=text, label=label, exact=exact)
    if role and (text is not None or label is not None):
        query = query.model_copy(update={"text": text, "label": label})
    found = Locator(desk, query)
    return found.nth(index) if index is not None else found


def _acted(d, node, what: str) -> dict[str, Any]:
    return {"element": node.summary(), "done": what}


def register(app: MCPServer, desks, run) -> None:
    @app.tool()
    async def accessibility_tree(ctx: Context, max_nodes: int = 400) -> dict[str, Any]:
        """The widgets the apps publish (role, name, text, states, pixel box), as an outline and as a list.
        Apps without a tree (Tk, xterm) are not in it: use find_text / screenshot for those."""

        def read(d) -> dict[str, Any]:
            snap = d.desk.a11y_snapshot(time_limit=2.0, max_nodes=max(1, min(max_nodes, 3000)))
            return {"apps": snap.apps, "truncated": snap.truncated, "outline": snap.render(max_nodes),
                    "nodes": [n.summary() for n in snap.nodes if n.visible][:max_nodes]}

        return await run(desks, ctx, "accessibility_tree", {"max_nodes": max_nodes}, read)

    @app.tool()
    async def click_element(ctx: Context, role: str | None = None, name: str | None = None, text: str | None = None,
                            label: str | None = None, exact: bool = False, index: int | None = None,
                            timeout: float = 5.0) -> dict[str, Any]:  # fmt: skip
        """Click an element found in the accessibility tree, e.g. role='button', name='Save'; waits up to
        `timeout` seconds for it to be visible and enabled."""
        from deskpilot.actions.models import Click

        args = {"role": role, "name": name, "text": text, "label": label, "exact": exact, "index": index}

        def click(d) -> dict[str, Any]:
            node = _locator(d.desk, role, name, text, label, exact, index).element(state="actionable", timeout=timeout)
            x, y = node.center
            d.act(Click(x=x, y=y), f"click_element({node.describe()})")
            return {**_acted(d, node, "clicked"), "clicked": [x, y]}

        return await run(desks, ctx, "click_element", args, click)

    @app.tool()
    async def fill_element(value: str, ctx: Context, role: str | None = None, name: str | None = None,
                           label: str | None = None, exact: bool = False, index: int | None = None,
                           timeout: float = 5.0) -> dict[str, Any]:  # fmt: skip
        """Fill a text field found in the accessibility tree (e.g. label='Email'): click it, select all, type
        `value` (which replaces what was there)."""
        from deskpilot.actions.models import Click, Key, Type

        args = {"role": role, "name": name, "label": label, "exact": exact, "index": index}

        def fill(d) -> dict[str, Any]:
            node = _locator(d.desk, role, name, None, label, exact, index).element(state="actionable", timeout=timeout)
            x, y = node.center
            d.act(Click(x=x, y=y), f"fill_element({node.describe()})")
            d.act(Key.model_validate({"keys": "ctrl+a"}), "select all")
            d.act(Type(text=value) if value else Key.model_validate({"keys": "delete"}), "type the value")
            return _acted(d, node, "filled")

        return await run(desks, ctx, "fill_element", {**args, "value": "***" if value else ""}, fill)
