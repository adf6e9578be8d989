"""Turn what a person did (X input events, with the screen and window titles at each) into workflow steps.

Rules, most robust step first:

* a left click becomes an element step (``click: {role: button, name: Save}``)
  when the app under the pointer publishes an accessibility tree and the widget
  there has a role and a name that match one visible widget (replays find it
  wherever the layout puts it); else ``click_text`` when OCR reads a text under
  the pointer that occurs once on that screen; else ``click`` at the point in
  thousandths of the screen (the only form for right and double clicks, which
  element steps do not express);
* runs of printable keys (Shift included, BackSpace editing the run, Enter as
  a newline) become one ``type`` (braces doubled: ``{x}`` typed is not a variable); keys with Ctrl, Alt or Super, and special
  keys, become ``key`` (``ctrl+s``);
* wheel notches become one ``scroll`` (thousandths, direction, notches) while
  they keep one direction over about the same point;
* a window that was not there before becomes ``wait_for_window`` (its
  title) ahead of the step that first saw it (or right after the step whose
  event opened it, when the window list was read after the window mapped), or ``wait_for: {role, name}``
  when the tree showed it as a dialog (a file chooser, an alert): the role
  survives a theme or language that words the title bar differently; the windows open when the
  recording starts come first (with their loaded title, see ``_loaded_title``). A title that changes on the same window (an
  editor's "*" for unsaved changes) is not a new window.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from deskpilot.perception.gestures import (
    ALT, BUTTONS, CONTROL, DOUBLE_CLICK_PX, DOUBLE_CLICK_S, MODIFIER_KEYS, SHIFT, SUPER, WHEEL, key_name,
)
from deskpilot.perception.inputs import InputEvent

# the pure key and click rules live a layer down (perception/gestures.py), shared with the agent's take-over turn
_MODIFIER_KEYS, _BUTTONS = MODIFIER_KEYS, BUTTONS


class Seen(BaseModel):
    """One input event with what the screen showed when it happened."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    event: InputEvent
    windows: dict[int, str] = Field(default_factory=dict)  # managed windows (X id -> title) when it was read
    frame: Image.Image | None = None  # the screen at a click (for OCR)
    element: dict[str, Any] | None = None  # the widget clicked, as an element step names it (role, name, exact)
    step: dict[str, Any] | None = None  # a step made in place (a check from "Add check"): written as it is
    secret: str | None = None  # a key typed into a secret field: the burst becomes {secret}, its value is dropped
    dialogs: dict[str, str] = Field(default_factory=dict)  # window title -> its dialog role, as the tree showed it
    after: dict[int, str] = Field(default_factory=dict)  # windows this event opened (mapped after it; read late)


class Compiled(BaseModel):
    """One workflow step and the event (with its screen) it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    step: dict[str, Any]
    frame: Image.Image | None = None
    point: dict[str, Any] | None = None  # a click's point step (thousandths), for formats without elements
    at: tuple[int, int] | None = None  # a scroll's point in pixels (the next notch nearby adds to it)


ElementStep = Callable[[Seen], "dict[str, Any] | None"]
TextAt = Callable[[Image.Image, int, int], "str | None"]


DIALOG_ROLES = ("dialog", "file chooser", "alert", "color chooser", "font chooser")


def dialogs_in(tree) -> dict[str, str]:
    """Title -> role of the dialogs a snapshot shows as top-level windows (an app's root's children)."""
    if tree is None:
        return {}
    return {n.name: n.role for n in tree.nodes if n.depth == 1 and n.role in DIALOG_ROLES and n.name}


def _window_wait(title: str, role: str | None) -> dict[str, Any]:
    if role is None:
        return {"wait_for_window": brace(title)}
    return {"wait_for": {"role": role, "name": brace(title)}}


def brace(text: str) -> str:
    """Text read from the screen, as a workflow string: braces doubled, so ``{x}`` there is no variable."""
    return text.replace("{", "{{").replace("}", "}}")


def compile_steps(seen: Sequence[Seen], size: tuple[int, int], *, text_at: TextAt | None = None,
                  element_step: ElementStep | None = None, initial: dict[int, str] | None = None) -> list[Compiled]:
    """The workflow steps for ``seen`` (in order) on a screen of ``size``; ``initial``: the windows at the start."""
    first = next((item.windows for item in seen if item.windows), {})
    out = [Compiled(step={"wait_for_window": brace(_loaded_title(title, first.get(wid, "")))})
           for wid, title in (initial or {}).items() if title or first.get(wid)]
    buffer: list[str] = []
    known = set(initial or {})
    last_click: tuple[InputEvent, Compiled] | None = None

    secret: list[str | None] = [None]  # the secret name of the burst in the buffer

    def flush() -> None:
        if buffer:
            text = "{" + secret[0] + "}" if secret[0] else "".join(buffer).replace("{", "{{").replace("}", "}}")
            out.append(Compiled(step={"type": text}))
            buffer.clear()

    def wait_for_new(windows: dict[int, str], dialogs: dict[str, str]) -> None:
        new = [wid for wid in windows if wid not in known]
        if any(windows[wid] for wid in new):
            flush()
        for wid in new:
            if title := windows[wid]:
                out.append(Compiled(step=_window_wait(title, dialogs.get(title))))
        known.update(new)

    opened: Seen | None = None  # the previous event, whose windows mapped after it come before this one's step
    for item in seen:
        if opened is not None:
            wait_for_new(opened.after, opened.dialogs)
        opened = item
        if item.step is not None:
            flush()
            out.append(Compiled(step=dict(item.step), frame=item.frame))
            continue
        wait_for_new(item.windows, item.dialogs)
        event = item.event
        if event.kind == "key_press":
            if event.keysym in _MODIFIER_KEYS:
                continue
            chord = [name for mask, name in ((CONTROL, "ctrl"), (ALT, "alt"), (SUPER, "super")) if event.state & mask]
            if not chord and (event.char or event.keysym in ("Return", "KP_Enter")):
                if item.secret != secret[0]:
                    flush()
                    secret[0] = item.secret
                buffer.append(event.char or "\n")
                continue
            if not chord and event.keysym == "BackSpace" and buffer:
                buffer.pop()
                continue
            flush()
            if chord and event.state & SHIFT:
                chord.append("shift")
            out.append(Compiled(step={"key": "+".join([*chord, key_name(event.base_key or event.keysym)])}))
        elif event.kind == "button_press" and event.detail in _BUTTONS:
            flush()
            previous = last_click
            if (previous is not None and event.detail == 1 and previous[0].detail == 1
                    and event.time - previous[0].time <= DOUBLE_CLICK_S
                    and abs(event.x - previous[0].x) <= DOUBLE_CLICK_PX and abs(event.y - previous[0].y) <= DOUBLE_CLICK_PX
                    and out and out[-1] is previous[1]):
                previous[1].step = previous[1].point = {**_point(previous[0], size), "double": True}
                last_click = None
                continue
            compiled = Compiled(step=_click_step(item, size, text_at, element_step), frame=item.frame,
                                point=_point(event, size))
            out.append(compiled)
            last_click = (event, compiled)
        elif event.kind == "button_press" and event.detail in WHEEL:
            flush()
            last_click = None
            _add_notch(out, event, size)
    flush()
    if opened is not None:
        wait_for_new(opened.after, opened.dialogs)
    return out


def _add_notch(out: list[Compiled], event: InputEvent, size: tuple[int, int]) -> None:
    """One wheel notch: more of the last ``scroll`` when it is the same way over about the same point."""
    direction = WHEEL[event.detail]
    last = out[-1] if out else None
    if (last is not None and "scroll" in last.step and last.step["direction"] == direction and last.at is not None
            and max(abs(event.x - last.at[0]), abs(event.y - last.at[1])) <= 4 * DOUBLE_CLICK_PX):
        last.step["amount"] += 1
        return
    at = _point(event.model_copy(update={"detail": 1}), size)["click"]
    out.append(Compiled(step={"scroll": at, "direction": direction, "amount": 1}, at=(event.x, event.y)))


def mark_values(steps: list[Compiled], values: dict[str, str]) -> list[Compiled]:
    """Each occurrence of a value in typed text, checks and click texts becomes its ``{name}`` (longest first).

    For variables the person marked (``--var user=ann``: typed "ann" becomes
    ``{user}``) and for secrets (their values must never be written: a click's
    text is read off a frame that, on a loaded machine, can already show what was
    typed after the click, a secret included).
    """
    pairs = sorted(((name, value.replace("{", "{{").replace("}", "}}")) for name, value in values.items() if value),
                   key=lambda pair: -len(pair[1]))

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            for name, needle in pairs:
                value = value.replace(needle, "{" + name + "}")
            return value
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    for compiled in steps:
        for kind in ("type", "check", "click_text"):
            if kind in compiled.step:
                compiled.step[kind] = swap(compiled.step[kind])
    return steps


def _loaded_title(initial: str, later: str) -> str:
    """The title to wait for, of a window open at the start: its title at the first event when that one
    holds the first (LibreOffice's "LibreOffice" becomes "book.xlsx - LibreOffice Calc" once the document
    has loaded: typing before that is lost), unless it only gained an unsaved-changes mark ("*notes")."""
    bare = later.lstrip("*").strip()
    if not initial:
        return bare
    return bare if bare != initial and initial in bare and not later.startswith("*") else initial


def _click_step(item: Seen, size: tuple[int, int], text_at: TextAt | None,
                element_step: ElementStep | None) -> dict[str, Any]:
    event = item.event
    if _BUTTONS[event.detail] == "left":
        if item.element is not None:
            return {"click": dict(item.element)}
        if element_step is not None and (element := element_step(item)) is not None:
            return element
        if text_at is not None and item.frame is not None:
            if (text := text_at(item.frame, event.x, event.y)) is not None:
                return {"click_text": brace(text)}
    return _point(event, size)


def _point(event: InputEvent, size: tuple[int, int]) -> dict[str, Any]:
    """A click at the event's point in thousandths of the screen (with its button unless left)."""
    width, height = size
    step: dict[str, Any] = {"click": [min(999, event.x * 1000 // width), min(999, event.y * 1000 // height)]}
    if _BUTTONS[event.detail] != "left":
        step["button"] = _BUTTONS[event.detail]
    return step


# Roles whose click means "this point inside me" (a caret position, a spot on a canvas), not "this widget".
_PLACES = {"text", "document text", "document frame", "document web", "document spreadsheet",
           "document presentation", "terminal", "canvas", "drawing area", "frame", "window", "filler", "panel",
           "scroll pane", "viewport", "layered pane", "root pane", "split pane", "unknown", "redundant object",
           "image", "icon", "separator", "table", "tree table", "paragraph", "section", "application"}


def friendly_role(role: str) -> str:
    """The ARIA name whose first AT-SPI role is ``role`` (push button -> button), else ``role`` itself."""
    from deskpilot.perception.a11y import ARIA_ROLES

    return next((aria for aria, names in ARIA_ROLES.items() if names[0] == role), role)


_MENU_ITEMS = {"menu item", "check menu item", "radio menu item", "menu"}


def menu_item_at(snapshot, x: int, y: int) -> dict[str, Any] | None:
    """The item of an open popup menu at (x, y), if one is there: popups are drawn above every window,
    but their tree hangs below the menu bar, so asking the window under the point does not find them."""
    hits = [n for n in snapshot.nodes
            if n.visible and n.role in _MENU_ITEMS and n.parent is not None
            and snapshot.nodes[n.parent].role in ("menu", "popup menu") and n.box is not None
            and n.box[0] <= x < n.box[0] + n.box[2] and n.box[1] <= y < n.box[1] + n.box[3]]
    if not hits:
        return None
    node = min(hits, key=lambda n: n.box[2] * n.box[3] if n.box else 0)
    return {"role": node.role, "name": node.name, "path": node.path}


def element_target(found: dict[str, Any] | None, snapshot) -> dict[str, Any] | None:
    """What an element step should name for the widget ``found`` under a click (role, name and, when
    the name alone is not unique, ``exact``), or None: no name, a place-like role, or not one of its kind.

    ``found`` is ``A11yReader.element_at``'s answer; ``snapshot`` the tree read at that moment.
    """
    from deskpilot.perception.a11y import Query, find

    if not found or not str(found.get("name") or "").strip() or found.get("role") in _PLACES:
        return None
    name = str(found["name"]).strip()
    role = friendly_role(str(found["role"]))
    for exact in (False, True):
        if len([n for n in find(snapshot, Query(role=role, name=name, exact=exact)) if n.visible]) == 1:
            return {"role": role, "name": brace(name), **({"exact": True} if exact else {})}
    return None


def ocr_text_at(frame: Image.Image, x: int, y: int) -> str | None:
    """The OCR line under (x, y), if it occurs exactly once on the frame (so click_text finds this one)."""
    from deskpilot.perception import ocr

    lines = ocr.read_text(frame)
    hit = [line for line in lines if line.box[0] <= x <= line.box[2] and line.box[1] <= y <= line.box[3]]
    if not hit:
        return None
    text = hit[0].text.strip()
    if len(text) < 2 or len(ocr.match(lines, text)) != 1:
        return None
    return text
