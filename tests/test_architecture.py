"""The package's layers, read from the source with `ast`: no import circles, nothing imports upwards.

docs/architecture.md describes the same layers; this test keeps it true. Imports inside
``if TYPE_CHECKING:`` are annotations only and are not counted; imports inside functions are.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOPS = {"deskpilot": "deskpilot", "agent": "deskpilot.agent", "perception": "deskpilot.perception",
        "actions": "deskpilot.actions", "model_backend": "deskpilot.model_backend", "sandbox": "deskpilot.sandbox"}
DOORS = ("mcp", "live", "eval", "workflow", "demo", "pytest_plugin", "record")
# lower number = lower layer; a module may import only its own layer's unit or lower ones
RANKS = {"errors": 0, "sandbox": 1, "actions": 2, "perception": 3, "model_backend": 4, "agent": 5,
         **{door: 6 for door in DOORS}, "cli": 7}
ROOMS = ["desk", "records", "checks", "dialects", "loop", "config"]  # agent's rooms, bottom first


def _modules() -> dict[str, Path]:
    found = {}
    for top, package in TOPS.items():
        for path in (REPO / top).rglob("*.py"):
            rel = path.relative_to(REPO / top).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if top == "deskpilot" and parts[:1] and parts[0] in TOPS:
                continue
            found[name] = path
    return found


MODULES = _modules()


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> set[str]:
    """The deskpilot modules `name` imports (a package means its __init__)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - (node.level - (1 if is_package else 0))]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = {f"{module}.{alias.name}" for alias in node.names} & set(MODULES)
            found.update(subs)  # `from pkg import submodule` needs the submodule, not pkg's own names
            if len(subs) < len(node.names):
                found.add(module)
    out = set()
    for module in found:
        while module and module not in MODULES:  # `import deskpilot.x.y` of a name inside a module
            module = module.rpartition(".")[0]
        if module and module != name:
            out.add(module)
    return out


GRAPH = {name: imports_of(name) for name in MODULES}


def unit(name: str) -> str:
    """The layer a module belongs to: errors, a lower package, agent, a door or the CLI."""
    parts = name.split(".")
    if len(parts) == 1:
        return "root"
    return parts[1]


def test_the_source_tree_was_read():
    assert {"deskpilot.agent.loop.agent", "deskpilot.cli", "deskpilot.mcp.server", "deskpilot.errors",
            "deskpilot.sandbox", "deskpilot.pytest_plugin"} <= set(MODULES)
    assert "deskpilot.agent.desk.session" in GRAPH["deskpilot.agent.loop.agent"]


def test_no_import_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_nothing_imports_a_higher_layer_or_another_door():
    wrong = []
    for name, targets in GRAPH.items():
        source = unit(name)
        if source == "root":
            continue  # the public API's lazy loader names everything by design
        for target in targets:
            dest = unit(target)
            if dest == "root":
                if RANKS[source] < RANKS["cli"] - 1:
                    wrong.append(f"{name} -> deskpilot (the public API)")
                continue
            if RANKS[dest] > RANKS[source] or (RANKS[dest] == RANKS[source] == 6 and dest != source):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "upward or door-to-door imports:\n" + "\n".join(sorted(wrong))


def test_agent_rooms_import_only_rooms_below_them():
    wrong = []
    for name, targets in GRAPH.items():
        parts = name.split(".")
        if parts[:2] != ["deskpilot", "agent"] or len(parts) < 3:
            continue
        for target in targets:
            tparts = target.split(".")
            if tparts[:2] != ["deskpilot", "agent"] or len(tparts) < 3 or tparts[2] == parts[2]:
                continue
            if ROOMS.index(tparts[2]) > ROOMS.index(parts[2]):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "agent rooms importing a room above them:\n" + "\n".join(sorted(wrong))


def test_agent_top_level_is_a_handful_of_rooms():
    entries = sorted(p.name for p in (REPO / "agent").iterdir() if p.name != "__pycache__")
    assert entries == sorted(["__init__.py", *ROOMS]), entries
    doc = (REPO / "agent" / "__init__.py").read_text(encoding="utf-8")
    for room in ROOMS:
        assert f"``{room}``" in doc, f"agent/__init__.py does not describe the {room} room"


@pytest.mark.parametrize("door", ["cli", "mcp", "live", "eval", "workflow", "demo"])
def test_doors_live_in_deskpilot(door):
    assert (REPO / "deskpilot" / door / "__init__.py").is_file()
    assert not (REPO / "agent" / door).exists()


def test_checker_sees_a_planted_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above would pass on an empty graph; here they must fail on a bad one."""
    bad = {"deskpilot.sandbox.x": {"deskpilot.agent.loop.agent"}, "deskpilot.agent.loop.agent": {"deskpilot.sandbox.x"}}
    monkeypatch.setattr(sys.modules[__name__], "GRAPH", bad)
    with pytest.raises(AssertionError):
        test_no_import_circles()
    with pytest.raises(AssertionError):
        test_nothing_imports_a_higher_layer_or_another_door()
