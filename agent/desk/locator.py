"""Playwright-shaped locators over the accessibility tree of a desk.

``desk.get_by_role("button", name="Save").click()`` finds the element in a
fresh bounded snapshot of the sandbox's AT-SPI tree (``perception/a11y.py``),
waits until it is there, visible and enabled, and clicks the middle of its
screen box through the desk's own executor (``Session.click``): the same
typed action, settle and record as every other desk action.

Rules, as in Playwright:

* A locator is lazy: it is a query, resolved again on every use.
* Strict: an action or a read on a locator that matches two or more elements
  fails with a list of them; use ``.nth(i)``, ``.first`` or a narrower query.
  One exception: copies of one widget (same role and name) in two views of
  the same document (Calc while it loads, Window > New Window) resolve to
  the copy in front (``perception.a11y.in_view``); ``count()`` still counts both.
  Copies that cannot be told apart (same box; Calc mid-load) are waited out
  until the timeout before they count as a strictness error.
* Auto-waiting: actions wait for the element to be visible, enabled and
  stable (the same box a moment later); actions and reads retry until ``timeout`` (per call, else the
  desk's ``locator_timeout``, ``DEFAULT_TIMEOUT`` = 5 s by default). Each retry
  reads the tree within what is left of that time, so a hung app cannot hold
  a step longer than the timeout.
* Names match case-insensitively as substrings; ``exact=True`` wants the
  whole name; a compiled ``re.Pattern`` is searched.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal, Union

from deskpilot.perception.a11y import (
    NoTree,
    Node,
    NotFound,
    Query,
    Snapshot,
    StrictError,
    cell_position,
    copies,
    closest_names,
    find,
    in_view,
    known_role,
    role_names,
)

DEFAULT_TIMEOUT = 5.0
POLL_S = 0.05  # between two reads of the tree while waiting
NO_TREE = ("no app on this desktop publishes an accessibility tree ({apps}): Tk and xterm do not; "
           "use OCR instead (deskpilot.perception.ocr.click_text / find_text, or a text_visible check)")  # fmt: skip
_CELL = re.compile(r"^\$?[A-Z]{1,3}\$?[0-9]{1,7}$")
_OFFICE = {"soffice", "soffice.bin", "libreoffice"}
State = Literal["visible", "hidden", "attached", "detached", "enabled"]
TextMatch = Union[str, "re.Pattern[str]"]


class Locator:
    """A query for elements of one desk; see the module doc for the rules."""

    def __init__(self, desk: Any, query: Query, *, parent: Locator | None = None, index: int | None = None) -> None:
        if query.role is not None and not known_role(query.role):
            from deskpilot.errors import UsageError

            raise UsageError(f"unknown role {query.role!r}: use an ARIA role (button, textbox, checkbox, menuitem, "
                             "link, combobox, tab, dialog, heading, cell, ...) or an AT-SPI role name")  # fmt: skip
        self.desk = desk
        self.query = query
        self.parent = parent
        self.index = index

    # -- building ---------------------------------------------------------------------------------
    def get_by_role(self, role: str, name: TextMatch | None = None, *, exact: bool = False,
                    checked: bool | None = None, disabled: bool | None = None) -> Locator:  # fmt: skip
        return Locator(self.desk, role_query(role, name, exact, checked, disabled), parent=self)

    def get_by_text(self, text: TextMatch, *, exact: bool = False) -> Locator:
        return Locator(self.desk, Query(text=text, exact=exact), parent=self)

    def get_by_label(self, label: TextMatch, *, exact: bool = False) -> Locator:
        return Locator(self.desk, Query(label=label, exact=exact), parent=self)

    def nth(self, index: int) -> Locator:
        return Locator(self.desk, self.query, parent=self.parent, index=index)

    @property
    def first(self) -> Locator:
        return self.nth(0)

    @property
    def last(self) -> Locator:
        return self.nth(-1)

    def describe(self) -> str:
        own = f"get_by({self.query.describe()})" + (f".nth({self.index})" if self.index is not None else "")
        return f"{self.parent.describe()}.{own}" if self.parent else own

    def __repr__(self) -> str:
        return f"<Locator {self.describe()}>"

    # -- resolving --------------------------------------------------------------------------------
    def resolve(self, snapshot: Snapshot) -> list[Node]:
        """Every element this locator names in ``snapshot`` (after ``.nth``: at most one)."""
        within = self.parent.resolve(snapshot) if self.parent is not None else None
        if within is not None and not within:
            return []
        found = find(snapshot, self.query, within)
        if self.index is None:
            return found
        try:
            return [found[self.index]]
        except IndexError:
            return []

    def _snapshot(self, deadline: float) -> Snapshot:
        """A snapshot within what is left of the wait (at least 0.5 s, so the last read is whole)."""
        left = max(0.5, deadline - time.monotonic())
        cells = self._cells()
        if cells:
            return self.desk.a11y_snapshot(time_limit=min(left, 2.0), cells=cells)
        return self.desk.a11y_snapshot(time_limit=min(left, 2.0))

    def _cells(self) -> tuple[str, ...] | None:
        """The spreadsheet cells this locator names exactly ("B2"): a snapshot then asks for those only."""
        q = self.query
        if q.role is not None and "table cell" in role_names(q.role) and q.exact and isinstance(q.name, str):
            if cell_position(q.name) is not None:
                return (q.name,)
        return None

    def count(self) -> int:
        """How many elements match now (no waiting)."""
        return len(self.resolve(self._snapshot(time.monotonic() + self._timeout(None))))

    def all(self) -> list[Node]:
        """The matching elements now (no waiting, not strict)."""
        return self.resolve(self._snapshot(time.monotonic() + self._timeout(None)))

    def _timeout(self, timeout: float | None) -> float:
        return float(timeout if timeout is not None else getattr(self.desk, "locator_timeout", DEFAULT_TIMEOUT))

    def element(self, *, state: str = "attached", timeout: float | None = None) -> Node:
        """The one element, once it exists in ``state`` (visible, enabled, attached); strict."""
        wait = self._timeout(timeout)
        deadline = time.monotonic() + wait
        snap: Snapshot | None = None
        found: list[Node] = []
        while True:
            snap = self._snapshot(deadline)
            found = in_view(snap, self.resolve(snap))  # copies of one widget in two views: the one in front
            if copies(found) and time.monotonic() < deadline:  # one widget published twice mid-load: wait
                time.sleep(POLL_S)
                continue
            if len(found) > 1:
                listed = "; ".join(f"{i}: {n.describe()} at {n.path}" for i, n in enumerate(found[:8]))
                raise StrictError(f"{self.describe()} matches {len(found)} elements ({listed}); "
                                  "use .nth(i), .first or a narrower name")  # fmt: skip
            if found and _in_state(found[0], state) and (state != "actionable" or self._stable(found[0])):
                return found[0]
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        raise self._failure(snap, found, state, wait)

    def _stable(self, node: Node) -> bool:
        """Playwright's "stable" check: the box is the same a moment later (no layout still moving it)."""
        time.sleep(POLL_S)
        reply = self.desk.a11y.call(node.ref, "org.a11y.atspi.Component", "GetExtents", "u", (0,))
        return reply is not None and tuple(int(v) for v in reply[0]) == node.box

    def _failure(self, snap: Snapshot, found: list[Node], state: str, wait: float) -> Exception:
        if snap.silent and not found:
            return NotFound(f"{self.describe()}: app(s) {', '.join(snap.silent)} did not answer on the "
                            f"accessibility bus within {wait:g} s")  # fmt: skip
        if not snap.apps:
            apps = ", ".join(self.desk.app_names()) or "no apps"
            return NoTree(NO_TREE.format(apps=apps))
        if found:
            wanted = "visible and enabled" if state == "actionable" else state
            return NotFound(f"{self.describe()} found {found[0].describe()} but it is not {wanted} "
                            f"within {wait:g} s (states: {', '.join(sorted(found[0].states)) or 'none'})")  # fmt: skip
        near = closest_names(snap, self.query)
        seen = "; ".join(near) if near else "no named elements"
        return NotFound(f"nothing matches {self.describe()} within {wait:g} s; closest seen: {seen}")

    # -- reading ----------------------------------------------------------------------------------
    def text(self, *, timeout: float | None = None) -> str:
        node = self.element(timeout=timeout)
        return node.text if node.text is not None else node.name

    def value(self, *, timeout: float | None = None) -> str | float:
        """A field's value: the number of a slider/spin button, else its text, else its name."""
        node = self.element(timeout=timeout)
        if node.value is not None:
            return node.value
        return node.text if node.text is not None else node.name

    def is_visible(self) -> bool:
        found = self.all()
        return len(found) == 1 and found[0].visible

    def is_enabled(self, *, timeout: float | None = None) -> bool:
        return self.element(timeout=timeout).enabled

    def is_checked(self, *, timeout: float | None = None) -> bool:
        return "checked" in self.element(timeout=timeout).states

    def box(self, *, timeout: float | None = None) -> tuple[int, int, int, int] | None:
        """(x, y, width, height) in screen pixels, once visible."""
        return self.element(state="visible", timeout=timeout).box

    def wait_for(self, state: State = "visible", *, timeout: float | None = None) -> Node | None:
        """Wait until the element is visible / enabled / attached, or hidden / detached (then None)."""
        if state in ("visible", "enabled", "attached"):
            return self.element(state=state, timeout=timeout)
        wait = self._timeout(timeout)
        deadline = time.monotonic() + wait
        while True:
            found = self.resolve(self._snapshot(deadline))
            if not found if state == "detached" else not any(n.visible for n in found):
                return None
            if time.monotonic() >= deadline:
                raise NotFound(f"{self.describe()} is still {'there' if state == 'detached' else 'visible'} "
                               f"after {wait:g} s")  # fmt: skip
            time.sleep(POLL_S)

    # -- acting (through the desk's executor) -----------------------------------------------------
    def _actionable(self, timeout: float | None) -> Node:
        return self.element(state="actionable", timeout=timeout)

    def click(self, *, timeout: float | None = None) -> Node:
        node = self._actionable(timeout)
        if node.role == "table cell" and _CELL.match(node.name) and node.app in _OFFICE:
            self._select_cell(node)
        else:
            self.desk.click(*node.center)
        return node

    def _select_cell(self, node: Node) -> None:
        """Go to a spreadsheet cell: by its address in LibreOffice's Name Box, else by a click.

        LibreOffice's GTK3 bridge reports some boxes (cells among them) a row
        off while a sheet lays itself out, so its cells are reached by name.
        """
        if _CELL.match(node.name) and node.app in _OFFICE:
            self.desk.key("ctrl+shift+f5")  # focus the Name Box
            self.desk.type(node.name)
            self.desk.key("enter")
        else:
            self.desk.click(*node.center)

    def double_click(self, *, timeout: float | None = None) -> Node:
        node = self._actionable(timeout)
        self.desk.double_click(*node.center)
        return node

    def fill(self, text: str, *, timeout: float | None = None) -> Node:
        """Focus the field, select all it holds, type ``text`` (typing replaces the selection).

        A spreadsheet cell is clicked, typed into and stored with Enter (there
        select-all would select the whole sheet).
        """
        node = self._actionable(timeout)
        if node.role == "table cell":  # a spreadsheet cell: typing replaces it; Enter stores it
            self._select_cell(node)
            self.desk.type(text)
            self.desk.key("enter")
            return node
        self.desk.click(*node.center)
        self.desk.key("ctrl+a")
        if text:
            self.desk.type(text)
        else:
            self.desk.key("delete")
        return node

    def press(self, keys: str, *, timeout: float | None = None) -> Node:
        """Focus the element (a click unless it has the focus already), then press ``keys``."""
        node = self._actionable(timeout)
        if "focused" not in node.states:
            self.desk.click(*node.center)
        self.desk.key(keys)
        return node


def role_query(role: str, name: TextMatch | None = None, exact: bool = False, checked: bool | None = None,
               disabled: bool | None = None) -> Query:  # fmt: skip
    states: list[str] = []
    if checked is not None:
        states.append("checked" if checked else "unchecked")
    if disabled is not None:
        states.append("disabled" if disabled else "enabled")
    return Query(role=role, name=name, exact=exact, states=tuple(states))


def _in_state(node: Node, state: str) -> bool:
    if state == "attached":
        return True
    if state == "visible":
        return node.visible
    if state == "enabled":
        return node.enabled
    if state == "actionable":
        return node.visible and node.enabled
    return state in node.states


class LocatorAssertions:
    """Playwright's ``expect(locator)``: each assertion retries until its timeout, then fails in one line.

    The failure is a ``CheckFailed`` (an ``AssertionError``) whose message says
    what was expected and what the tree showed last; pytest hides these frames
    (``__tracebackhide__``), so the traceback ends at the test's own line.
    """

    def __init__(self, locator: Locator, timeout: float | None = None) -> None:
        self.locator = locator
        self.timeout = timeout

    def _retry(self, what: str, probe) -> None:
        __tracebackhide__ = True
        from deskpilot.errors import CheckFailed

        wait = self.locator._timeout(self.timeout)
        deadline = time.monotonic() + wait
        last = "nothing read"
        while True:
            try:
                ok, last = probe()
            except (NotFound, StrictError) as err:
                ok, last = False, str(err)
            if ok:
                return
            if time.monotonic() >= deadline:
                raise CheckFailed(f"expect({self.locator.describe()}).{what} failed after {wait:g} s: {last}")
            time.sleep(POLL_S)

    def _node(self) -> Node:
        return self.locator.element(timeout=0)

    def to_have_text(self, text: TextMatch) -> None:
        """The whole text (or name) equals ``text`` (spacing folded) or matches a regex."""
        __tracebackhide__ = True

        def probe() -> tuple[bool, str]:
            node = self._node()
            now = node.text if node.text is not None else node.name
            ok = text.search(now) is not None if isinstance(text, re.Pattern) else " ".join(now.split()) == " ".join(text.split())
            return ok, f"text is {now[:80]!r}"

        self._retry(f"to_have_text({text!r})", probe)

    def to_contain_text(self, text: str) -> None:
        __tracebackhide__ = True

        def probe() -> tuple[bool, str]:
            node = self._node()
            now = node.text if node.text is not None else node.name
            return " ".join(text.split()).lower() in " ".join(now.split()).lower(), f"text is {now[:80]!r}"

        self._retry(f"to_contain_text({text!r})", probe)

    def to_have_value(self, value: Any) -> None:
        __tracebackhide__ = True

        def probe() -> tuple[bool, str]:
            now = self.locator.value(timeout=0)
            same = str(now) == str(value) or (isinstance(now, float) and isinstance(value, (int, float)) and now == value)
            return same, f"value is {now!r}"

        self._retry(f"to_have_value({value!r})", probe)

    def _state(self, name: str, want: bool, test) -> None:
        __tracebackhide__ = True

        def probe() -> tuple[bool, str]:
            node = self._node()
            return test(node) == want, f"{node.describe()} has states {', '.join(sorted(node.states)) or 'none'}"

        self._retry(name, probe)

    def to_be_enabled(self) -> None:
        __tracebackhide__ = True
        self._state("to_be_enabled()", True, lambda n: n.enabled)

    def to_be_disabled(self) -> None:
        __tracebackhide__ = True
        self._state("to_be_disabled()", False, lambda n: n.enabled)

    def to_be_checked(self, checked: bool = True) -> None:
        __tracebackhide__ = True
        self._state(f"to_be_checked({checked})", checked, lambda n: "checked" in n.states)

    def to_be_focused(self) -> None:
        __tracebackhide__ = True
        self._state("to_be_focused()", True, lambda n: "focused" in n.states)

    def to_be_visible(self) -> None:
        __tracebackhide__ = True
        self._state("to_be_visible()", True, lambda n: n.visible)

    def to_be_hidden(self) -> None:
        __tracebackhide__ = True

        def probe() -> tuple[bool, str]:
            found = self.locator.all()
            return not any(n.visible for n in found), f"{len(found)} visible"

        self._retry("to_be_hidden()", probe)

    def to_have_count(self, count: int) -> None:
        __tracebackhide__ = True

        def probe() -> tuple[bool, str]:
            found = self.locator.all()
            return len(found) == count, f"{len(found)} match"

        self._retry(f"to_have_count({count})", probe)


def expect(locator: Locator, *, timeout: float | None = None) -> LocatorAssertions:
    """Assertions on a locator that retry until ``timeout`` (default: the locator's desk timeout)."""
    return LocatorAssertions(locator, timeout)
