"""The action space as the GLM-V desktop prompts present it, generated from models.

Each call the model may write is a small pydantic model of its parameters
(names, types, defaults and enums as the model was trained on them); the
prompt shows one ``###`` heading per call group, a ``Call rule:`` line and a
JSON-schema block rendered from that model. Because the block is generated,
the prompt cannot drift from what the parser accepts (tests compare both
with ``actions.models``).

The block layout follows the trained one: a Python-literal style dict with
4-space indents, ``name``/``description``/``parameters`` keys and inline
lists. Descriptions are our own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from deskpilot.actions.models import Scroll

_BOX = "Point [x,y] in thousandths (0-999) of the screenshot width and height"
_HOLD = ("Keys to keep pressed during the action, joined by '+' (for example 'ctrl', 'shift' or "
         "'ctrl+shift'); leave it empty or 'None' to hold nothing.")
ScrollDirection = Literal["down", "up"]  # what the prompt offers; the parser also takes left/right


@dataclass(frozen=True)
class CallSpec:
    """One ``###`` section: the call names it covers, its heading and its parameter model."""

    heading: str
    names: tuple[str, ...]
    description: str
    params: type[BaseModel]

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the call, in the trained key order, from the parameter model."""
        raw = self.params.model_json_schema()
        properties = {name: _property(spec) for name, spec in raw.get("properties", {}).items()}
        return {
            "name": list(self.names) if len(self.names) > 1 else self.names[0],
            "description": self.description,
            "parameters": {"type": "object", "properties": properties, "required": list(raw.get("required", []))},
        }

    def call_rule(self) -> str:
        """``left_click(start_box='[x,y]', element_info='')`` with the heading's name form."""
        fields = self.params.model_fields
        drag = "end_box" in fields
        args = []
        for name, field in fields.items():
            if name.endswith("_box"):
                point = "[x,y]" if not drag else ("[x1,y1]" if name == "start_box" else "[x2,y2]")
                args.append(f"{name}='{point}'")
            elif field.annotation is int:
                args.append(f"{name}={field.default}")
            else:
                args.append(f"{name}=''")
        return f"{self.heading}({', '.join(args)})"


def _property(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("type", "items", "enum", "default", "description"):
        if key not in spec:
            continue
        value = spec[key]
        if key == "items":
            value = {k: v for k, v in value.items() if k == "type"}
        if key == "default" and value in ("", None):
            continue
        out[key] = value
    if "enum" in out and "type" not in out:
        out = {"type": "string", **out}
    return out


def _params(name: str, **fields: tuple[Any, Any]) -> type[BaseModel]:
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)  # type: ignore[call-overload]


def _box(what: str) -> tuple[Any, Any]:
    return (list[int], Field(description=f"{_BOX} {what}."))


def _info(what: str, required: bool) -> tuple[Any, Any]:
    if required:
        return (str, Field(description=f"Short description of the element {what}."))
    return (str, Field(default="", description=f"Optional short description of the element {what}."))


_HOLD_FIELD = (str, Field(default="", description=_HOLD))


def desktop_calls(*, extended: bool = False, answer: bool = True, fail: bool = True) -> list[CallSpec]:
    """The desktop action space: the GLM-4.5V one, or with ``extended`` the newer GLM-V
    one (hold_keys on pointer calls, left_triple_click, named drag ends, element_info required).

    Built once per variant: every run makes a dialect, and creating the
    parameter models (pydantic classes) cost ~5 ms of CPU per attempt in an eval.
    """
    return list(_desktop_calls(extended, answer, fail))


@lru_cache(maxsize=8)
def _desktop_calls(extended: bool, answer: bool, fail: bool) -> tuple[CallSpec, ...]:
    hold = {"hold_keys": _HOLD_FIELD} if extended else {}
    req = extended

    def pointer(what: str, target: str = "") -> dict[str, tuple[Any, Any]]:
        return {"start_box": _box(f"where to {what}"), **hold, "element_info": _info(target or f"to {what}", req)}

    if extended:
        drag = _params("LeftDrag", start_box=_box("where the drag starts"),
                       start_element_info=_info("the drag starts on", True),
                       end_box=_box("where the drag ends"), end_element_info=_info("the drag ends on", True),
                       hold_keys=_HOLD_FIELD)
    else:
        drag = _params("LeftDrag", start_box=_box("where the drag starts"), end_box=_box("where the drag ends"),
                       element_info=_info("being dragged", False))
    scroll_fields: dict[str, tuple[Any, Any]] = {
        "start_box": _box("over the area to scroll"),
        "direction": (ScrollDirection, Field(description="Which way to turn the wheel: 'down' or 'up'.")),
        "step": (int, Field(default=Scroll.model_fields["amount"].default,
                            description="How many wheel notches to turn (5 unless said otherwise).")),
        **hold,
        "element_info": _info("being scrolled", req),
    }
    calls = [
        CallSpec("{left,right,middle}_click", ("left_click", "right_click", "middle_click"),
                 "Press and release the left, right or middle mouse button once at a point of the screen.",
                 _params("Click", **pointer("click"))),
        CallSpec("hover", ("hover",), "Move the mouse pointer to a point without clicking.",
                 _params("Hover", **pointer("move the pointer", "to point at"))),
    ]
    if extended:
        calls.append(CallSpec("left_{double,triple}_click", ("left_double_click", "left_triple_click"),
                              "Click the left button two or three times in quick succession at a point "
                              "(a triple click selects a whole line or paragraph).",
                              _params("MultiClick", **pointer("double- or triple-click"))))
    else:
        calls.append(CallSpec("left_double_click", ("left_double_click",),
                              "Click the left button twice in quick succession at a point.",
                              _params("DoubleClick", **pointer("double-click"))))
    calls += [
        CallSpec("left_drag", ("left_drag",),
                 "Press the left button at the start point, move to the end point with it held, and release.", drag),
        CallSpec("key", ("key",), "Press one key, or several keys together as a shortcut.",
                 _params("Key", keys=(str, Field(description="The key, or keys joined by '+' for a shortcut "
                                                            "(for example 'enter', 'ctrl+s', 'alt+f4')).")))),
        CallSpec("type", ("type",), "Type text at the current keyboard focus. It does not click or clear "
                                    "any field first: focus (and clear) the field yourself before typing.",
                 _params("Type", content=(str, Field(description="The exact text to type.")))),
        CallSpec("scroll", ("scroll",), "Turn the mouse wheel over a point of the screen.",
                 _params("Scroll", **scroll_fields)),
        CallSpec("WAIT", ("WAIT",), "Do nothing for 5 seconds, e.g. while something loads.", _params("Wait")),
    ]
    done_fields = {"answer": (str, Field(default="", description=(
        "The answer, when the task asks for information (a value, a name, yes or no); "
        "leave it empty otherwise.")))} if answer else {}
    calls.append(CallSpec("DONE", ("DONE",), "Finish: the task has been completed successfully.",
                          _params("Done", **done_fields)))
    if fail:
        calls.append(CallSpec("FAIL", ("FAIL",), "Finish: the task cannot be completed.", _params("Fail")))
    return tuple(calls)


def render_value(value: Any, indent: int = 0) -> str:
    """Python-literal style rendering of a schema (the layout the model was trained on)."""
    pad, inner = " " * indent, " " * (indent + 4)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{key!r}: {render_value(val, indent + 4)}" for key, val in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list):
        return "[" + ", ".join(render_value(v, indent) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def render_action_space(calls: list[CallSpec]) -> str:
    """All sections: heading, call rule and schema block each, separated by blank lines."""
    return _rendered(tuple(calls))


@lru_cache(maxsize=16)
def _rendered(calls: tuple[CallSpec, ...]) -> str:
    """The rendering of a (cached, immutable) action space: JSON schemas are made once, not per run."""
    sections = [f"### {c.heading}\n\nCall rule: `{c.call_rule()}`\n{render_value(c.schema())}" for c in calls]
    return "\n" + "\n\n".join(sections)


def signature_lines(calls: list[CallSpec]) -> list[str]:
    """One ``name(param=...)`` line per call name (the GLM-4.1V list form)."""
    lines = []
    for call in calls:
        rule = call.call_rule()
        args = rule[rule.index("("):]
        lines += [f"{name}{args}" for name in call.names]
    return lines
