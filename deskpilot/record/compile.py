"""Turn what a person did (X input events, with the screen and window titles at each) into workflow steps.

Rules, most robust step first:

* a click becomes ``click_text`` when OCR reads a text under the pointer that
  occurs once on that screen, else ``click`` at the point in thousandths of the
  screen (``element_step`` is the hook where an accessibility element step
  -- role and name -- goes first, once the desktop publishes a tree);
* runs of printable keys (Shift included, BackSpace editing the run, Enter as
  a newline) become one ``type``; keys with Ctrl, Alt or Super, and special
  keys, become ``key`` (``ctrl+s``);
* a window that was not there before becomes ``wait_for_window`` (its
  title) ahead of the step that first saw it; the windows open when the
  recording starts come first. A title that changes on the same window (an
  editor's "*" for unsaved changes) is not a new window.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from deskpilot.perception.gestures import BUTTONS, GestureReader, key_name
from deskpilot.perception.inputs import InputEvent

__all__ = ["Compiled", "Seen", "compile_steps", "key_name", "ocr_text_at"]


class Seen(BaseModel):
    """One input event with what the screen showed when it happened."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    event: InputEvent
    windows: dict[int, str] = Field(default_factory=dict)  # managed windows (X id -> title) when it was read
    frame: Image.Image | None = None  # the screen at a click (for OCR)


class Compiled(BaseModel):
    """One workflow step and the event (with its screen) it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    step: dict[str, Any]
    frame: Image.Image | None = None


ElementStep = Callable[[Seen], "dict[str, Any] | None"]
TextAt = Callable[[Image.Image, int, int], "str | None"]


def compile_steps(seen: Sequence[Seen], size: tuple[int, int], *, text_at: TextAt | None = None,
                  element_step: ElementStep | None = None, initial: dict[int, str] | None = None) -> list[Compiled]:
    """The workflow steps for ``seen`` (in order) on a screen of ``size``; ``initial``: the windows at the start."""
    out = [Compiled(step={"wait_for_window": title}) for title in (initial or {}).values() if title]
    reader = GestureReader()
    known = set(initial or {})
    clicked: list[Compiled] = []  # the last click's step (a double click marks it, if nothing came after it)

    def emit(found) -> None:
        for gesture in found:
            if gesture.kind == "type":
                out.append(Compiled(step={"type": gesture.text}))
            elif gesture.kind == "key":
                out.append(Compiled(step={"key": gesture.text}))
            elif gesture.kind in ("scroll", "drag"):
                continue  # no workflow step for them yet (and the recording feeds no releases)
            elif gesture.kind == "double" and clicked and out[-1] is clicked[-1]:
                out[-1].step["double"] = True
            else:  # a click (or a double whose first click is no longer the last step: a window came between)
                compiled = Compiled(step=_click_step(item, size, text_at, element_step), frame=item.frame)
                clicked[:] = [compiled]
                out.append(compiled)

    for item in seen:
        new = [wid for wid in item.windows if wid not in known]
        if any(item.windows[wid] for wid in new):
            emit(reader.flush())
        for wid in new:
            if item.windows[wid]:
                out.append(Compiled(step={"wait_for_window": item.windows[wid]}))
        known.update(new)
        emit(reader.feed(item.event))
    emit(reader.flush())
    return out


def _click_step(item: Seen, size: tuple[int, int], text_at: TextAt | None,
                element_step: ElementStep | None) -> dict[str, Any]:
    event = item.event
    button = BUTTONS[event.detail]
    if element_step is not None and (element := element_step(item)) is not None:
        return element
    if button == "left" and text_at is not None and item.frame is not None:
        if (text := text_at(item.frame, event.x, event.y)) is not None:
            return {"click_text": text}
    width, height = size
    step: dict[str, Any] = {"click": [min(999, event.x * 1000 // width), min(999, event.y * 1000 // height)]}
    if button != "left":
        step["button"] = button
    return step


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
