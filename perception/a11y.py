"""The accessibility tree: a second sense next to the screenshot.

GTK, Qt, LibreOffice (GTK3 plugin), Firefox and Chromium publish their widgets
over AT-SPI, a D-Bus protocol; each sandbox runs its own accessibility bus
(``sandbox/a11ybus.py``) and this module reads it from the host side.

Why jeepney (a pure-Python D-Bus client) and not pyatspi/``gi``: libatspi
finds its bus through process-wide state (one ``AT_SPI_BUS_ADDRESS`` per
process), while deskpilot drives many sandboxes from one process (pools,
evals); and ``gi`` lives outside the venv. jeepney opens one plain connection
per sandbox, speaks the AT-SPI interfaces directly, and lets a snapshot send
every request of one tree level before reading any reply (one round trip per
level, not one per property).

A snapshot is bounded three ways so a 10,000-cell spreadsheet or a hung app
cannot stall a step: ``max_nodes``, ``max_depth`` and ``time_limit`` (every
read on the bus waits at most until that deadline). Subtrees of widgets that
are not showing (hidden pages, cells scrolled away) are left out unless asked
(``hidden=True``): each costs one call (its states), not six; the items of a
closed menu are not asked at all, and of a spreadsheet only the cells in view.
A reader remembers what does not change (each widget's role and interfaces,
the bytes of each request), so a desk's later snapshots ask less.
"""

from __future__ import annotations

import difflib
import re
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from jeepney import DBusAddress, MessageType, Properties, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from pydantic import BaseModel, ConfigDict

from deskpilot.errors import DeskpilotError

REGISTRY = ("org.a11y.atspi.Registry", "/org/a11y/atspi/accessible/root")
_ACCESSIBLE = "org.a11y.atspi.Accessible"
_COMPONENT = "org.a11y.atspi.Component"
_TEXT = "org.a11y.atspi.Text"
_VALUE = "org.a11y.atspi.Value"
_TABLE = "org.a11y.atspi.Table"
_APPLICATION = "org.a11y.atspi.Application"
_LABEL_FOR = 1  # AT-SPI RelationType
MAX_TEXT = 4000  # characters of a text widget kept in a snapshot

# AT-SPI's StateType, in bit order
STATES = (
    "invalid", "active", "armed", "busy", "checked", "collapsed", "defunct", "editable", "enabled",
    "expandable", "expanded", "focusable", "focused", "has_tooltip", "horizontal", "iconified", "modal",
    "multi_line", "multiselectable", "opaque", "pressed", "resizable", "selectable", "selected", "sensitive",
    "showing", "single_line", "stale", "transient", "vertical", "visible", "manages_descendants",
    "indeterminate", "required", "truncated", "animated", "invalid_entry", "supports_autocompletion",
    "selectable_text", "is_default", "visited", "checkable", "has_popup", "read_only",
)  # fmt: skip

# ARIA role names people know -> AT-SPI role names (as GetRoleName spells them)
ARIA_ROLES: dict[str, tuple[str, ...]] = {
    "button": ("push button", "toggle button", "push button menu"),
    "checkbox": ("check box", "check menu item"),
    "radio": ("radio button", "radio menu item"),
    "textbox": ("text", "entry", "password text", "editbar", "terminal"),
    "searchbox": ("entry", "text"),
    "combobox": ("combo box",),
    "menuitem": ("menu item", "check menu item", "radio menu item", "tearoff menu item"),
    "menuitemcheckbox": ("check menu item",),
    "menuitemradio": ("radio menu item",),
    "menu": ("menu", "popup menu"),
    "menubar": ("menu bar",),
    "link": ("link",),
    "tab": ("page tab",),
    "tablist": ("page tab list",),
    "tabpanel": ("scroll pane", "panel", "filler"),
    "dialog": ("dialog", "file chooser", "alert", "color chooser", "font chooser"),
    "alertdialog": ("alert", "dialog"),
    "alert": ("alert", "notification"),
    "heading": ("heading",),
    "cell": ("table cell",),
    "gridcell": ("table cell",),
    "columnheader": ("column header", "table column header"),
    "rowheader": ("row header", "table row header"),
    "row": ("table row",),
    "table": ("table", "tree table"),
    "grid": ("table", "tree table"),
    "list": ("list", "list box"),
    "listbox": ("list box", "list"),
    "listitem": ("list item",),
    "option": ("list item",),
    "tree": ("tree", "tree table"),
    "treeitem": ("tree item", "table cell"),
    "slider": ("slider",),
    "spinbutton": ("spin button",),
    "scrollbar": ("scroll bar",),
    "progressbar": ("progress bar",),
    "separator": ("separator",),
    "toolbar": ("tool bar",),
    "status": ("status bar",),
    "img": ("image", "icon"),
    "image": ("image", "icon"),
    "document": ("document text", "document frame", "document spreadsheet", "document presentation", "document web"),
    "window": ("frame", "window", "dialog"),
    "label": ("label", "static"),
    "paragraph": ("paragraph",),
    "group": ("panel", "filler", "grouping"),
    "tooltip": ("tool tip",),
}


class A11yError(DeskpilotError):
    """The accessibility bus could not be read (not running, or an app did not answer in time)."""


class NoTree(A11yError):
    """No app on the desktop publishes an accessibility tree (Tk, xterm, ...)."""


class NotFound(A11yError):
    """A locator matched nothing (or nothing in the wanted state) within its timeout."""


class StrictError(A11yError):
    """A locator that must name one element matched several."""


class Node(BaseModel):
    """One widget as an app publishes it; ``box`` is (x, y, width, height) in screen pixels."""

    model_config = ConfigDict(frozen=True)

    index: int  # position in the snapshot (depth-first order)
    parent: int | None
    depth: int
    path: str  # child indexes from the app's root, e.g. "mousepad/0/3/1"
    app: str
    role: str
    name: str = ""
    description: str = ""
    states: frozenset[str] = frozenset()
    text: str | None = None
    value: float | None = None
    box: tuple[int, int, int, int] | None = None
    label: str = ""  # the text of the label tied to this field (AT-SPI's labelled-by relation)
    ref: tuple[str, str]  # (bus name, object path) on the sandbox's bus

    @property
    def visible(self) -> bool:
        return "showing" in self.states and self.box is not None and self.box[2] > 0 and self.box[3] > 0

    @property
    def enabled(self) -> bool:
        return "enabled" in self.states or "sensitive" in self.states

    @property
    def center(self) -> tuple[int, int]:
        if self.box is None:
            raise A11yError(f"{self.describe()} has no screen box")
        x, y, w, h = self.box
        return x + w // 2, y + h // 2

    def describe(self) -> str:
        """A short human line: ``push button 'Save'``."""
        return f"{self.role} {self.name!r}" if self.name else self.role

    def summary(self) -> dict[str, Any]:
        """The node as plain data (for MCP answers, records and error messages)."""
        out: dict[str, Any] = {"role": self.role, "name": self.name, "path": self.path}
        if self.text:
            out["text"] = self.text[:200]
        if self.value is not None:
            out["value"] = self.value
        if self.box:
            out["box"] = list(self.box)
        out["states"] = sorted(s for s in self.states if s in _REPORTED_STATES)
        return out


_REPORTED_STATES = {"enabled", "focused", "checked", "selected", "editable", "expanded", "pressed", "showing", "modal"}


class Snapshot(BaseModel):
    """A bounded read of the tree: the nodes, how long it took, and whether a bound cut it short."""

    nodes: list[Node]
    apps: list[str]
    elapsed: float
    truncated: str | None = None  # why the snapshot stopped early (nodes, depth, time), if it did
    silent: list[str] = []  # apps that did not answer within the time limit

    def children(self, node: Node) -> list[Node]:
        return [n for n in self.nodes if n.parent == node.index]

    def descendants(self, node: Node) -> list[Node]:
        """Nodes below ``node`` (depth-first order keeps them contiguous)."""
        out: list[Node] = []
        for n in self.nodes[node.index + 1 :]:
            if n.depth <= node.depth:
                break
            out.append(n)
        return out

    def text_lines(self) -> str:
        """Every visible name and text of the screen, one per line (what text checks read)."""
        seen: list[str] = []
        for node in self.nodes:
            if not node.visible:
                continue
            for part in (node.name, node.text or ""):
                if part and part not in seen:
                    seen.append(part)
        return "\n".join(seen)

    def render(self, limit: int = 400) -> str:
        """An indented outline (for people and for the MCP tool)."""
        lines = []
        for node in self.nodes[:limit]:
            extra = f" = {node.text[:60]!r}" if node.text else ""
            box = f" @{node.box[0]},{node.box[1]} {node.box[2]}x{node.box[3]}" if node.box else ""
            lines.append("  " * node.depth + node.describe() + extra + box)
        if len(self.nodes) > limit:
            lines.append(f"... {len(self.nodes) - limit} more nodes")
        return "\n".join(lines)


# -- queries --------------------------------------------------------------------------------------


def role_names(role: str) -> tuple[str, ...]:
    """AT-SPI role names meant by ``role`` (an ARIA name, or AT-SPI's own with spaces or underscores)."""
    key = role.strip().lower()
    return ARIA_ROLES.get(key, (key.replace("_", " "),))


def known_role(role: str) -> bool:
    return role.strip().lower() in ARIA_ROLES or role.strip().lower().replace("_", " ") in _ATSPI_ROLE_NAMES


def text_matches(actual: str | None, wanted: str | re.Pattern[str], exact: bool = False) -> bool:
    """Playwright's rule: a string matches case-insensitively as a substring (whitespace folded) unless exact."""
    if actual is None:
        return False
    if isinstance(wanted, re.Pattern):
        return wanted.search(actual) is not None
    if exact:
        return actual == wanted
    fold = " ".join(wanted.split()).lower()
    return fold in " ".join(actual.split()).lower()


class Query(BaseModel):
    """What a locator looks for; every given field must match."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    role: str | None = None
    name: str | re.Pattern[str] | None = None
    text: str | re.Pattern[str] | None = None
    label: str | re.Pattern[str] | None = None
    exact: bool = False
    states: tuple[str, ...] = ()  # e.g. ("enabled", "checked")

    def matches(self, node: Node, snapshot: Snapshot | None = None) -> bool:
        if self.role is not None and node.role not in role_names(self.role):
            return False
        if self.name is not None and not text_matches(node.name, self.name, self.exact):
            return False
        if self.text is not None and not (
            text_matches(node.name, self.text, self.exact) or text_matches(node.text, self.text, self.exact)
        ):
            return False
        if self.label is not None and not (
            text_matches(node.label, self.label, self.exact)
            or (node.role in _FIELD_ROLES and text_matches(node.name, self.label, self.exact))
        ):
            return False
        return all(_has_state(node, s) for s in self.states)

    def describe(self) -> str:
        parts = []
        if self.role:
            parts.append(f"role={self.role!r}")
        for key in ("name", "text", "label"):
            value = getattr(self, key)
            if value is not None:
                shown = f"/{value.pattern}/" if isinstance(value, re.Pattern) else repr(value)
                parts.append(f"{key}={shown}")
        if self.exact:
            parts.append("exact=True")
        parts += [f"state={s}" for s in self.states]
        return ", ".join(parts) or "any element"


_FIELD_ROLES = {"text", "entry", "password text", "combo box", "spin button", "check box", "radio button", "slider"}


def _has_state(node: Node, state: str) -> bool:
    if state == "visible":
        return node.visible
    if state == "hidden":
        return not node.visible
    if state == "enabled":
        return node.enabled
    if state == "disabled":
        return not node.enabled
    if state == "unchecked":
        return "checked" not in node.states
    return state in node.states


def find(snapshot: Snapshot, query: Query, within: Sequence[Node] | None = None) -> list[Node]:
    """Nodes of ``snapshot`` matching ``query`` (below any node of ``within`` when given)."""
    pool: Iterable[Node] = snapshot.nodes
    if within is not None:
        seen: dict[int, Node] = {}
        for parent in within:
            for node in snapshot.descendants(parent):
                seen.setdefault(node.index, node)
        pool = [seen[i] for i in sorted(seen)]
    found = [node for node in pool if query.matches(node, snapshot)]
    if query.text is not None and len(found) > 1:  # as Playwright: the innermost element holding the text
        outer: set[int] = set()
        for node in found:
            up = node.parent
            while up is not None and up not in outer:
                outer.add(up)
                up = snapshot.nodes[up].parent
        found = [node for node in found if node.index not in outer]
    return found


def in_view(snapshot: Snapshot, found: list[Node]) -> list[Node]:
    """Of several copies of one widget (same role and name), the one in the view a person sees.

    An app can publish one widget twice: LibreOffice Calc briefly holds a
    second view of the sheet while a document loads (two cells "B1"), and
    Window > New Window shows the same document in two windows. A person
    means the copy in front: the one whose window is active, else the only
    one whose every ancestor is showing with a box. Anything else (two
    different widgets, or no single copy in front) is left to strictness.
    """
    if len(found) < 2 or len({(n.role, n.name) for n in found}) > 1:
        return found
    chains = {n.index: _ancestors(snapshot, n) for n in found}
    on_screen = [n for n in found if n.visible and all(a.visible for a in chains[n.index][:-1])]
    active = [n for n in found if n.visible and any("active" in a.states for a in chains[n.index])]
    for narrowed in (active, on_screen):
        if len(narrowed) == 1:
            return narrowed
    return found


def copies(found: list[Node]) -> bool:
    """True when several matches are copies of one widget at one place (same role, name and box).

    LibreOffice Calc, while a file loads, briefly publishes its sheet twice in
    a window not yet titled or active: ``in_view`` cannot tell them apart, but
    they are one widget mid-load, not a strictness error yet.
    """
    return len(found) > 1 and len({(n.role, n.name, n.box) for n in found}) == 1


def _ancestors(snapshot: Snapshot, node: Node) -> list[Node]:
    """From the parent up to the app (the app last)."""
    out, up = [], node.parent
    while up is not None:
        out.append(snapshot.nodes[up])
        up = snapshot.nodes[up].parent
    return out


def closest_names(snapshot: Snapshot, query: Query, count: int = 5) -> list[str]:
    """Names seen in the tree nearest to what was searched (for a one-line 'not found')."""
    wanted = query.name or query.text or query.label
    pool = [n for n in snapshot.nodes if n.visible and n.name]
    if query.role:
        same_role = [n for n in pool if n.role in role_names(query.role)]
        pool = same_role or pool
    names = list(dict.fromkeys(n.describe() for n in pool))
    if isinstance(wanted, str):
        by_name = {n.describe(): n.name for n in pool}
        scored = sorted(names, key=lambda d: -difflib.SequenceMatcher(None, wanted.lower(), by_name[d].lower()).ratio())
        return scored[:count]
    return names[:count]


def find_again(reader: A11yReader, element: dict[str, Any], *, time_limit: float = 1.0) -> tuple[int, int] | None:
    """Middle of the one visible widget with a recorded element's role and name (exact), or None.

    For cached runs and replays: the screen moved, but a button that is still
    there, one of its kind, is the same button.
    """
    if not element.get("role") or not element.get("name"):
        return None
    snap = reader.snapshot(time_limit=time_limit)
    query = Query(role=str(element["role"]), name=str(element["name"]), exact=True)
    found = [n for n in find(snap, query) if n.visible]
    return found[0].center if len(found) == 1 else None


# -- reading the bus ------------------------------------------------------------------------------


_SERIAL = struct.Struct("<I")
_MEMO_LIMIT = 60_000  # entries per table before it starts again (a long session must not grow without end)


class _Memo:
    """What one reader keeps between snapshots: request bytes, and each widget's role and interfaces.

    A widget's role and interfaces do not change during its life, and its
    object path is never given to another widget (GTK's, LibreOffice's and
    Qt's bridges number them from a counter; a bus name is never reused on a
    bus), so they are asked once: two fewer calls per widget on every later
    snapshot.
    """

    def __init__(self) -> None:
        self.wire: dict[tuple, bytes] = {}
        self.role: dict[tuple[str, str], str] = {}
        self.interfaces: dict[tuple[str, str], list[str]] = {}
        self.cell_kind: dict[tuple[str, str], tuple[str, list[str]]] = {}  # by table: its cells' role, interfaces

    def remember_wire(self, key: tuple, wire: bytes) -> None:
        if len(self.wire) >= _MEMO_LIMIT:
            self.wire.clear()
        self.wire[key] = wire

    def remember_kind(self, ref: tuple[str, str], role: str, interfaces: list[str]) -> None:
        if len(self.role) >= _MEMO_LIMIT:
            self.role.clear()
            self.interfaces.clear()
        self.role[ref], self.interfaces[ref] = role, interfaces


class _Pending:
    """Requests on one connection whose replies are read together (one round trip).

    Requests are queued and written with one ``sendall`` when the replies are
    collected: one system call (and one wake-up of the bus) per round, not
    one per request, which on a busy machine is most of a snapshot's time.
    """

    def __init__(self, conn: DBusConnection, memo: _Memo | None = None) -> None:
        self.conn = conn
        self.memo = memo if memo is not None else _Memo()
        self.waiting: dict[int, Any] = {}
        self.queued: list[bytes] = []
        self.missed: set[int] = set()  # requests of the last round that got no reply before the deadline

    def _queue(self, key: tuple, build: Any) -> int:
        """Queue one request; its bytes are built once per reader and reused with a new serial.

        A snapshot asks the same widgets the same questions every time, and
        jeepney's message building was a third of a LibreOffice snapshot. The
        serial is the only part that changes, at a fixed offset (bytes 8-11,
        little-endian) of every D-Bus message.
        """
        serial = next(self.conn.outgoing_serial)
        wire = self.memo.wire.get(key)
        if wire is None:
            wire = build().serialise(serial=1)
            self.memo.remember_wire(key, wire)
        self.queued.append(wire[:8] + _SERIAL.pack(serial) + wire[12:])
        self.waiting[serial] = None
        return serial

    def send(self, ref: tuple[str, str], interface: str, method: str, signature: str | None = None, body: tuple = ()) -> int:
        def build() -> Any:
            address = DBusAddress(ref[1], bus_name=ref[0], interface=interface)
            return new_method_call(address, method, signature, body) if signature else new_method_call(address, method)

        return self._queue((ref, interface, method, signature, body), build)

    def get(self, ref: tuple[str, str], interface: str, prop: str) -> int:
        return self._queue((ref, interface, "Get", prop),
                           lambda: Properties(DBusAddress(ref[1], bus_name=ref[0], interface=interface)).get(prop))  # fmt: skip

    def get_all(self, ref: tuple[str, str], interface: str) -> int:
        return self._queue((ref, interface, "GetAll"),
                           lambda: Properties(DBusAddress(ref[1], bus_name=ref[0], interface=interface)).get_all())  # fmt: skip

    def flush(self) -> None:
        if self.queued:
            self.conn.sock.sendall(b"".join(self.queued))
            self.queued.clear()

    def collect(self, deadline: float) -> dict[int, Any]:
        """Replies by serial (None for an error reply); stops at ``deadline`` leaving the rest None."""
        self.flush()
        results: dict[int, Any] = {}
        missing = set(self.waiting)
        while missing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                msg = self.conn.receive(timeout=left)
            except TimeoutError:
                break
            reply_to = msg.header.fields.get(5)  # HeaderFields.reply_serial
            if reply_to in missing:
                missing.discard(reply_to)
                results[reply_to] = msg.body if msg.header.message_type == MessageType.method_return else None
        self.waiting.clear()
        self.missed = missing
        return {**{s: None for s in missing}, **results}


class _CellPlan(NamedTuple):
    max_cells: int
    cells: tuple[str, ...] | None


_ADDRESS = re.compile(r"^\$?([A-Za-z]{1,3})\$?([1-9][0-9]{0,6})$")


def cell_address(row: int, column: int) -> str:
    """The address ("B2") of the cell at (row, column) from 0: the inverse of ``cell_position``."""
    letters, n = "", column + 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"{letters}{row + 1}"


def cell_position(address: str) -> tuple[int, int] | None:
    """(row, column) from 0 of a spreadsheet address like "B2"; None if it is not one."""
    found = _ADDRESS.match(address.strip())
    if found is None:
        return None
    col = 0
    for letter in found.group(1).upper():
        col = col * 26 + ord(letter) - ord("A") + 1
    return int(found.group(2)) - 1, col - 1


def _closed_menu(raw: _Raw) -> bool:
    """A menu of a menu bar (or a submenu) that is not open: none of its items is showing.

    An open menu is "selected" (GTK and LibreOffice alike). Not asking a
    closed menu's items for their states saves LibreOffice's ~600 calls per
    snapshot. A combo box's popup menu is not judged this way (its parent is
    the combo box).
    """
    return (raw.role == "menu" and raw.parent is not None and raw.parent.role in ("menu bar", "menu")
            and not raw.states & {"selected", "expanded"})  # fmt: skip


def _take_state(raw: _Raw, body: Any) -> bool:
    """Store the states read for ``raw``; True when it is showing (a widget that did not answer is not)."""
    raw.states = _states(body[0]) if body else frozenset()
    return "showing" in raw.states


def _unwrap(variant: Any) -> Any:
    return variant[1] if isinstance(variant, tuple) and len(variant) == 2 and isinstance(variant[0], str) else variant


def _states(bits: Sequence[int]) -> frozenset[str]:
    names = set()
    for word, value in enumerate(bits[:2]):
        for bit in range(32):
            if value >> bit & 1 and word * 32 + bit < len(STATES):
                names.add(STATES[word * 32 + bit])
    return frozenset(names)


class _Raw:
    """A node while its replies come in."""

    __slots__ = ("ref", "parent", "depth", "path", "app", "props", "role", "states", "interfaces", "children",
                 "text", "value", "box", "index", "label_for", "table", "toolkit", "addressed")  # fmt: skip

    def __init__(self, ref: tuple[str, str], parent: _Raw | None, depth: int, path: str, app: str) -> None:
        self.ref, self.parent, self.depth, self.path, self.app = ref, parent, depth, path, app
        self.toolkit: str = parent.toolkit if parent is not None else ""
        self.props: dict[str, Any] = {}
        self.role = "unknown"
        self.states: frozenset[str] = frozenset()
        self.interfaces: list[str] = []
        self.children: list[_Raw] = []
        self.text: str | None = None
        self.value: float | None = None
        self.box: tuple[int, int, int, int] | None = None
        self.index = -1
        self.label_for: list[tuple[str, str]] = []
        self.table: dict[str, Any] = {}  # the Table properties of a table that manages its descendants
        self.addressed = False  # a table whose cells are named by their address ("B2"), as seen at its corners


class A11yReader:
    """Reads one sandbox's accessibility bus. Thread-safe; one connection, opened on first use."""

    def __init__(self, address: str, *, timeout: float = 2.0) -> None:
        self.address = address
        self.timeout = timeout
        self._conn: DBusConnection | None = None
        self._lock = threading.Lock()
        self._memo = _Memo()

    def _connection(self) -> DBusConnection:
        if self._conn is None:
            try:
                self._conn = open_dbus_connection(bus=self.address, auth_timeout=self.timeout)
            except (OSError, ValueError) as exc:
                raise A11yError(f"cannot reach the sandbox's accessibility bus: {exc}") from None
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def apps(self, timeout: float | None = None) -> list[tuple[str, tuple[str, str]]]:
        """(name, ref) of every app registered on the bus."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            pending = _Pending(self._connection(), self._memo)
            serial = pending.send(REGISTRY, _ACCESSIBLE, "GetChildren")
            reply = pending.collect(deadline)[serial]
            refs = [tuple(r) for r in (reply[0] if reply else [])]
            names = {pending.get(ref, _ACCESSIBLE, "Name"): ref for ref in refs}
            got = pending.collect(deadline)
        return [(_unwrap(got[s][0]) if got[s] else "?", ref) for s, ref in names.items()]  # type: ignore[misc]

    def snapshot(
        self,
        *,
        max_nodes: int = 3000,
        max_depth: int = 40,
        time_limit: float = 1.0,
        hidden: bool = False,
        apps: Sequence[str] | None = None,
        max_cells: int = 260,
        cells: Sequence[str] | None = None,
    ) -> Snapshot:
        """A bounded read of every app's tree (or only the apps named in ``apps``)."""
        start = time.monotonic()
        deadline = start + time_limit
        with self._lock:
            try:
                plan = _CellPlan(max_cells, tuple(cells) if cells is not None else None)
                return self._snapshot(start, deadline, max_nodes, max_depth, hidden, apps, plan)
            except OSError as exc:
                self._drop()
                raise A11yError(f"the accessibility bus went away: {exc}") from None

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _snapshot(self, start: float, deadline: float, max_nodes: int, max_depth: int, hidden: bool,
                  only: Sequence[str] | None, max_cells: _CellPlan) -> Snapshot:  # fmt: skip
        """Breadth-first, two round trips per tree level.

        Round 1 asks each widget of the level for its properties, role,
        states, interfaces and children. Round 2 asks for the level's boxes,
        texts and values together with the states of the next level, so
        widgets that are not showing are dropped before anything else is
        asked of them.
        """
        pending = _Pending(self._connection(), self._memo)
        serial = pending.send(REGISTRY, _ACCESSIBLE, "GetChildren")
        reply = pending.collect(deadline).get(serial)
        if reply is None:
            raise A11yError("the accessibility registry did not answer in time")
        roots = [_Raw(tuple(ref), None, 0, "", "") for ref in reply[0]]
        truncated: str | None = None
        level, total, all_raw = roots, 0, []
        answered: set[str] = set()
        while level:
            asked = self._ask_basics(pending, level)
            untabled = self._take_basics(pending.collect(deadline), asked, pending.memo)
            if untabled:
                self._ask_children(pending, untabled, deadline)
            answered.update(raw.ref[0] for raw in level if raw.props)
            level = [r for r in level if r.props and (only is None or r.depth > 0 or r.app in only)]
            all_raw += level
            total += len(level)
            nxt = [child for raw in level if hidden or not _closed_menu(raw) for child in raw.children]
            if nxt and level[0].depth + 1 > max_depth:
                truncated, nxt = "depth", []
            details = self._ask_details(pending, level, hidden, max_cells)
            states = {id(raw): pending.send(raw.ref, _ACCESSIBLE, "GetState") for raw in nxt}  # hidden too: a
            # table's states decide (before its children are asked for) whether it may hold millions of them
            got = pending.collect(deadline)
            unread = {id(raw) for raw, _kind, serial in details if serial in pending.missed}
            asked_cells = self._take_details(got, details, pending, max_cells, deadline)
            if asked_cells:  # a spreadsheet's cells: their references come one round later
                cells = self._take_cells(pending.collect(deadline), asked_cells, pending.memo)
                nxt += cells
                states.update({id(raw): pending.send(raw.ref, _ACCESSIBLE, "GetState") for raw in cells})
                got.update(pending.collect(deadline))
            showing = [raw for raw in nxt if _take_state(raw, got.get(states[id(raw)]))]
            nxt = nxt if hidden else showing
            if time.monotonic() >= deadline:
                truncated = truncated or "time"
                if unread:  # cut before their box or text came: left out, not shown as a cell "B1" with no text
                    all_raw = [raw for raw in all_raw if id(raw) not in unread]
                break
            if total + len(nxt) > max_nodes:
                nxt = nxt[: max(0, max_nodes - total)]
                truncated = "nodes"
            level = nxt
        silent = sorted({r.app or r.ref[0] for r in roots if r.ref[0] not in answered})
        return self._build(roots, all_raw, time.monotonic() - start, truncated, silent)

    @staticmethod
    def _ask_props(pending: _Pending, raw: _Raw) -> int | dict[str, int]:
        """One GetAll for the name and description, except where GetAll is unsafe.

        Qt 5 answers ``Properties.GetAll`` by reading a second argument that
        is not there and crashes (SIGSEGV): its widgets, and every app's root
        (whose toolkit is not known yet), are asked property by property.
        """
        if raw.depth == 0 or raw.toolkit.startswith("Qt"):
            wanted = ("Name", "Description") if raw.depth else ("Name",)
            asked = {prop: pending.get(raw.ref, _ACCESSIBLE, prop) for prop in wanted}
            if raw.depth == 0:
                asked["ToolkitName"] = pending.get(raw.ref, _APPLICATION, "ToolkitName")
            return asked
        return pending.get_all(raw.ref, _ACCESSIBLE)

    @staticmethod
    def _take_props(got: dict[int, Any], asked: int | dict[str, int]) -> dict[str, Any] | None:
        if isinstance(asked, int):
            return {k: _unwrap(v) for k, v in got[asked][0].items()} if got[asked] is not None else None
        if got[asked["Name"]] is None:
            return None
        return {prop: _unwrap(got[serial][0]) for prop, serial in asked.items() if got[serial] is not None}

    @classmethod
    def _ask_basics(cls, pending: _Pending, level: list[_Raw]) -> list[tuple]:
        asked = []
        for raw in level:
            state = pending.send(raw.ref, _ACCESSIBLE, "GetState") if raw.depth == 0 or not raw.states else None
            tabled = "manages_descendants" in raw.states and not raw.toolkit.startswith("Qt")
            if tabled:  # maybe millions of children: a table's visible cells only
                kids = pending.get_all(raw.ref, _TABLE)
            elif raw.parent is not None and raw.parent.table:  # a spreadsheet's cell: no children to ask for
                kids = None
            else:
                kids = pending.send(raw.ref, _ACCESSIBLE, "GetChildren")
            known = raw.ref in pending.memo.role
            role = None if known else pending.send(raw.ref, _ACCESSIBLE, "GetRoleName")
            ifaces = None if known else pending.send(raw.ref, _ACCESSIBLE, "GetInterfaces")
            props = None if raw.props else cls._ask_props(pending, raw)  # a named cell: nothing to ask
            asked.append((raw, props, role, state, ifaces, kids, tabled))
        return asked

    @classmethod
    def _take_basics(cls, got: dict[int, Any], asked: list[tuple], memo: _Memo) -> list[_Raw]:
        """Store the level's basics; returns the widgets that manage their descendants but have no table."""
        untabled: list[_Raw] = []
        for raw, props, role, state, ifaces, kids, tabled in asked:
            if props is not None:
                taken = cls._take_props(got, props)
                if taken is None:
                    continue
                raw.props = taken
            if raw.depth == 0:  # an app: its name heads the paths of all its widgets
                raw.app = raw.path = str(raw.props.get("Name", "?"))
                raw.toolkit = str(raw.props.get("ToolkitName", ""))
            if role is None:
                raw.role, raw.interfaces = memo.role.get(raw.ref, "unknown"), memo.interfaces.get(raw.ref, [])
            else:
                raw.role = got[role][0] if got[role] else "unknown"
                raw.interfaces = list(got[ifaces][0]) if got[ifaces] else []
                if got[role] and got[ifaces]:
                    memo.remember_kind(raw.ref, raw.role, raw.interfaces)
                    if raw.parent is not None and raw.parent.table:
                        memo.cell_kind[raw.parent.ref] = (raw.role, raw.interfaces)
            if state is not None:
                raw.states = _states(got[state][0]) if got[state] else frozenset()
            if kids is None:
                continue
            if got[kids] is None:
                if tabled:
                    untabled.append(raw)
                continue
            if tabled:
                raw.table = {k: _unwrap(v) for k, v in got[kids][0].items()}
            else:
                raw.children = cls._children(raw, got[kids][0])
        return untabled

    @staticmethod
    def _children(raw: _Raw, refs: Sequence[Any]) -> list[_Raw]:
        return [_Raw(tuple(ref), raw, raw.depth + 1, f"{raw.path}/{i}", raw.app) for i, ref in enumerate(refs)]

    def _ask_children(self, pending: _Pending, raws: list[_Raw], deadline: float) -> None:
        """Children of widgets that manage their descendants but are no table (Writer's document: its
        visible paragraphs): asked one round later, once the Table request failed."""
        asked = [(raw, pending.send(raw.ref, _ACCESSIBLE, "GetChildren")) for raw in raws]
        got = pending.collect(deadline)
        for raw, serial in asked:
            if got[serial] is not None:
                raw.children = self._children(raw, got[serial][0])

    @staticmethod
    def _ask_details(pending: _Pending, level: list[_Raw], hidden: bool, max_cells: _CellPlan) -> list[tuple[_Raw, str, int]]:
        asked: list[tuple[_Raw, str, int]] = []
        for raw in level:
            if raw.depth > 0 and "showing" not in raw.states and not hidden:
                continue  # listed (its role and name), but its box, text and value are not read
            if _COMPONENT in raw.interfaces and raw.depth > 0:
                asked.append((raw, "box", pending.send(raw.ref, _COMPONENT, "GetExtents", "u", (0,))))
            if _TEXT in raw.interfaces:
                asked.append((raw, "text", pending.send(raw.ref, _TEXT, "GetText", "ii", (0, -1))))  # -1: to the end
            if _VALUE in raw.interfaces and not (raw.parent is not None and raw.parent.table):  # a cell: its text
                asked.append((raw, "value", pending.get(raw.ref, _VALUE, "CurrentValue")))
            if raw.role == "label":
                asked.append((raw, "relations", pending.send(raw.ref, _ACCESSIBLE, "GetRelationSet")))
        return asked

    def _take_details(self, got: dict[int, Any], asked: list[tuple[_Raw, str, int]], pending: _Pending,
                      max_cells: _CellPlan, deadline: float) -> list[tuple[_Raw, int, int]]:  # fmt: skip
        """Store boxes, texts and values; ask for the visible cells of tables (returned: what was asked)."""
        for raw, kind, serial in asked:
            body = got[serial]
            if body is None:
                continue
            if kind == "box":
                x, y, w, h = (int(v) for v in body[0])
                raw.box = (x, y, w, h) if w > 0 and h > 0 and x > -(2**30) and y > -(2**30) else None
            elif kind == "text":  # U+FFFC stands for each embedded child widget (browsers): not text
                text = body[0].replace("\ufffc", "")
                raw.text = text[:MAX_TEXT] if text.strip() or not body[0] else None
            elif kind == "value":
                raw.value = float(_unwrap(body[0]))
            elif kind == "relations":
                raw.label_for = [tuple(t) for kind_, targets in body[0] if kind_ == _LABEL_FOR for t in targets]
        tables = {id(raw): raw for raw, _kind, _serial in asked if raw.table}
        return self._ask_cells(pending, list(tables.values()), max_cells, deadline)

    def _ask_cells(self, pending: _Pending, tables: list[_Raw], plan: _CellPlan,
                   deadline: float) -> list[tuple[_Raw, int, int]]:  # fmt: skip
        """Cells of a huge table (a spreadsheet): the block in view (at most ``max_cells``, 26 columns wide;
        the top-left block when the view cannot be told), or only the cells named in ``plan.cells`` ("B2").

        Such tables manage their descendants: asking for all children would
        ask for millions, and each cell costs a few calls. The cells a person
        sees are what checks and locators need; their names (e.g. "A1") say
        where they are. A locator after one cell asks for that cell only.
        """
        asked = []
        views = self._views(pending, tables, deadline) if plan.cells is None and tables else {}
        for raw in tables:
            nrows, ncols = int(raw.table.get("NRows", 0) or 0), int(raw.table.get("NColumns", 0) or 0)
            if plan.cells is not None:
                spots = [rc for rc in map(cell_position, plan.cells) if rc and rc[0] < nrows and rc[1] < ncols]
            else:
                top, left, bottom, right = views.get(id(raw), (0, 0, nrows - 1, ncols - 1))
                cols = min(right - left + 1, ncols - left, 26)
                rows = min(bottom - top + 1, nrows - top, plan.max_cells // max(cols, 1))
                spots = [(r, c) for r in range(top, top + rows) for c in range(left, left + cols)]
            for r, c in spots:
                asked.append((raw, r * ncols + c, pending.send(raw.ref, _TABLE, "GetAccessibleAt", "ii", (r, c))))
        return asked

    @staticmethod
    def _views(pending: _Pending, tables: list[_Raw], deadline: float) -> dict[int, tuple[int, int, int, int]]:
        """(top, left, bottom, right) of the cells in view of each table, from the cells at its box's corners.

        A sheet shows about 16 columns of the 26 asked for otherwise: the
        cells outside cost two calls each for nothing, and a sheet scrolled
        away from A1 would be read where nobody looks. Two rounds, four calls
        per table (the cell at each corner, then its name, e.g. "P31").
        """
        corners = []
        for raw in tables:
            if raw.box is not None:
                x, y, w, h = raw.box
                corners.append((raw, [pending.send(raw.ref, _COMPONENT, "GetAccessibleAtPoint", "iiu", (px, py, 0))
                                      for px, py in ((x + 1, y + 1), (x + w - 2, y + h - 2))]))  # fmt: skip
        got = pending.collect(deadline)
        named = []
        for raw, serials in corners:
            refs = [tuple(got[s][0]) if got.get(s) else None for s in serials]
            if all(ref is not None and not ref[1].endswith("/null") for ref in refs):
                named.append((raw, [pending.get(ref, _ACCESSIBLE, "Name") for ref in refs if ref is not None]))
        got = pending.collect(deadline)
        views = {}
        for raw, serials in named:
            spots = [cell_position(str(_unwrap(got[s][0]))) if got.get(s) else None for s in serials]
            first, last = spots
            if first is not None and last is not None and first[0] <= last[0] and first[1] <= last[1]:
                views[id(raw)] = (first[0], first[1], last[0], last[1])
                raw.addressed = True
        return views

    @staticmethod
    def _take_cells(got: dict[int, Any], asked: list[tuple[_Raw, int, int]], memo: _Memo) -> list[_Raw]:
        """The cells' references; a table's cells share one role and set of interfaces (asked of one cell)."""
        cells = []
        for raw, i, serial in asked:
            if got.get(serial) is not None:
                cell = _Raw(tuple(got[serial][0]), raw, raw.depth + 1, f"{raw.path}/{i}", raw.app)
                if raw.ref in memo.cell_kind:
                    memo.remember_kind(cell.ref, *memo.cell_kind[raw.ref])
                if raw.addressed:  # its name is its address: not asked
                    cell.props = {"Name": cell_address(*divmod(i, int(raw.table.get("NColumns", 1) or 1)))}
                raw.children.append(cell)
                cells.append(cell)
        return cells

    @staticmethod
    def _build(roots: list[_Raw], all_raw: list[_Raw], elapsed: float, truncated: str | None, silent: list[str]) -> Snapshot:
        kept = {id(r) for r in all_raw}
        nodes: list[Node] = []

        def visit(raw: _Raw) -> None:
            if id(raw) not in kept:
                return
            raw.index = len(nodes)
            name = str(raw.props.get("Name", "") or "").strip()
            nodes.append(Node(
                index=raw.index, parent=raw.parent.index if raw.parent is not None else None, depth=raw.depth,
                path=raw.path, app=raw.app, role=raw.role, name=name,
                description=str(raw.props.get("Description", "") or ""), states=raw.states, text=raw.text,
                value=raw.value, box=raw.box, ref=raw.ref,
            ))  # fmt: skip
            for child in raw.children:
                visit(child)

        for root in roots:
            visit(root)
        labels = {ref: str(raw.props.get("Name", "")).strip() for raw in all_raw for ref in raw.label_for}
        if labels:
            nodes = [n.model_copy(update={"label": labels[n.ref]}) if n.ref in labels else n for n in nodes]
        apps = [str(r.props.get("Name", "?")) for r in roots if r.props]
        return Snapshot(nodes=nodes, apps=apps, elapsed=elapsed, truncated=truncated, silent=silent)

    # -- the element under a point (for the record of a click) --------------------------------------

    def element_at(self, x: int, y: int, *, time_limit: float = 0.3, box: bool = False) -> dict[str, Any] | None:
        """Role, name and path of the deepest widget at screen point (x, y), or None (no tree there, or slow).

        Asks each app's showing windows for their box, takes the active one
        holding the point, and walks down with Component.GetAccessibleAtPoint:
        a few calls, not a snapshot, so it fits before every recorded click.
        """
        deadline = time.monotonic() + time_limit
        with self._lock:
            try:
                return self._element_at(x, y, deadline, box)
            except OSError:
                self._drop()
                return None

    def _element_at(self, x: int, y: int, deadline: float, want_box: bool = False) -> dict[str, Any] | None:
        pending = _Pending(self._connection(), self._memo)
        serial = pending.send(REGISTRY, _ACCESSIBLE, "GetChildren")
        reply = pending.collect(deadline).get(serial)
        if not reply:
            return None
        apps = [(tuple(ref), pending.get(tuple(ref), _ACCESSIBLE, "Name"), pending.send(tuple(ref), _ACCESSIBLE, "GetChildren"))
                for ref in reply[0]]  # fmt: skip
        got = pending.collect(deadline)
        windows = []
        for _ref, name, kids in apps:
            app = str(_unwrap(got[name][0])) if got.get(name) else "?"
            for i, ref in enumerate(got[kids][0] if got.get(kids) else []):
                ref = tuple(ref)
                windows.append((app, i, ref, pending.send(ref, _ACCESSIBLE, "GetState"),
                                pending.send(ref, _COMPONENT, "GetExtents", "u", (0,))))  # fmt: skip
        got = pending.collect(deadline)
        hits = []
        for app, i, ref, state, box in windows:
            if not got.get(state) or not got.get(box):
                continue
            states = _states(got[state][0])
            bx, by, bw, bh = (int(v) for v in got[box][0])
            if "showing" in states and bx <= x < bx + bw and by <= y < by + bh:
                hits.append(("active" in states, app, i, ref))
        if not hits:
            return None
        _active, app, i, current = sorted(hits, key=lambda h: h[0])[-1]
        path = [app, str(i)]
        while time.monotonic() < deadline and len(path) < 60:
            at = pending.send(current, _COMPONENT, "GetAccessibleAtPoint", "iiu", (x, y, 0))
            reply = pending.collect(deadline).get(at)
            child = tuple(reply[0]) if reply else None
            if not child or child[1].endswith("/null") or child == current:
                break
            index = pending.send(child, _ACCESSIBLE, "GetIndexInParent")
            where = pending.collect(deadline).get(index)
            path.append(str(where[0]) if where else "?")
            current = child
        name = pending.get(current, _ACCESSIBLE, "Name")
        role = pending.send(current, _ACCESSIBLE, "GetRoleName")
        extents = pending.send(current, _COMPONENT, "GetExtents", "u", (0,)) if want_box else None
        got = pending.collect(deadline)
        if not got.get(role):
            return None
        found: dict[str, Any] = {"role": got[role][0], "name": str(_unwrap(got[name][0])).strip() if got.get(name) else "",
                 "path": "/".join(path)}
        if extents is not None:  # (x, y, width, height) in screen pixels, or None
            found["box"] = [int(v) for v in got[extents][0]] if got.get(extents) else None
        return found

    # -- acting on one element (no pixels needed) --------------------------------------------------

    def call(self, ref: tuple[str, str], interface: str, method: str, signature: str | None = None,
             body: tuple = (), timeout: float | None = None) -> Any:  # fmt: skip
        """One method call on an element; None if it failed or did not answer in time."""
        with self._lock:
            pending = _Pending(self._connection(), self._memo)
            serial = pending.send(ref, interface, method, signature, body)
            return pending.collect(time.monotonic() + (timeout or self.timeout))[serial]


_ATSPI_ROLE_NAMES = {name for names in ARIA_ROLES.values() for name in names} | {
    "application", "frame", "filler", "panel", "scroll pane", "viewport", "layered pane", "root pane",
    "split pane", "option pane", "glass pane", "internal frame", "desktop frame", "canvas", "drawing area",
    "menu bar", "tool bar", "status bar", "table column header", "table row header", "ruler", "section",
    "form", "unknown", "redundant object", "embedded", "chart", "caption", "header", "footer", "article",
    "landmark", "block quote", "comment", "description list", "description term", "description value",
}  # fmt: skip
