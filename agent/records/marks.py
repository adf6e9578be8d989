"""What the report draws over a screenshot: one distinct mark per action kind.

Marks are plain dicts (`el` = SVG element name, `attrs`, optional `text`) so
the template stays a dumb loop and every value passes through jinja's
escaping; model text (typed text, key names) only ever becomes SVG text.
"""

from __future__ import annotations

from typing import Any

Mark = dict[str, Any]

COLOURS = {
    "left": "#e53935",
    "right": "#8e24aa",
    "middle": "#00897b",
    "double": "#d81b60",
    "hover": "#546e7a",
    "drag": "#2e7d32",
    "scroll": "#1e88e5",
    "type": "#37474f",
    "key": "#ef6c00",
    "locate": "#fb8c00",
    "end": "#455a64",
}

LEGEND = [
    ("left", "left click"), ("right", "right click"), ("middle", "middle click"), ("double", "double click"),
    ("hover", "hover"), ("drag", "drag"), ("scroll", "scroll"), ("type", "typed text"), ("key", "key"),
    ("locate", "locate box"),
]


def _circle(x, y, r, colour, stroke, **extra) -> Mark:
    return {"el": "circle", "attrs": {"cx": x, "cy": y, "r": r, "fill": "none", "stroke": colour,
                                      "stroke-width": stroke, **extra}}


def _line(x1, y1, x2, y2, colour, stroke, **extra) -> Mark:
    return {"el": "line", "attrs": {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "stroke": colour,
                                    "stroke-width": stroke, **extra}}


def _cross(x, y, r, colour, stroke) -> list[Mark]:
    arm = round(r * 1.6, 1)
    return [_line(x - arm, y, x + arm, y, colour, stroke / 2), _line(x, y - arm, x, y + arm, colour, stroke / 2)]


def _label(x, y, text, colour, font, width, height, anchor_above=True) -> list[Mark]:
    """A filled tag with white text next to a point, kept inside the picture."""
    text = text if len(text) <= 80 else text[:77] + "..."
    w = round(font * 0.62 * len(text) + font, 1)
    h = round(font * 1.5, 1)
    lx = min(max(0, x + font), max(0, width - w))
    ly = y - font - h if anchor_above else y + font
    ly = min(max(0, ly), max(0, height - h))
    return [
        {"el": "rect", "attrs": {"x": lx, "y": ly, "width": w, "height": h, "rx": font / 3, "fill": colour,
                                 "opacity": "0.9"}},
        {"el": "text", "attrs": {"x": lx + font / 2, "y": ly + h * 0.72, "font-size": font, "fill": "#fff",
                                 "font-family": "sans-serif"}, "text": text},
    ]


def _banner(text, colour, font, width, height) -> list[Mark]:
    """A strip along the bottom edge, for actions without a point (type, key, wait, done)."""
    text = text if len(text) <= 90 else text[:87] + "..."
    h = round(font * 1.8, 1)
    return [
        {"el": "rect", "attrs": {"x": 0, "y": height - h, "width": width, "height": h, "fill": colour, "opacity": "0.88"}},
        {"el": "text", "attrs": {"x": font, "y": height - h * 0.3, "font-size": font, "fill": "#fff",
                                 "font-family": "sans-serif"}, "text": text},
    ]


def kind_of(action: dict | None) -> str:
    """The marker kind (a key of COLOURS) of a stored action."""
    if not action:
        return "end"
    t = str(action.get("type"))
    if t == "click":
        return str(action.get("button", "left"))
    return {"double_click": "double", "drag": "drag", "scroll": "scroll", "type": "type", "key": "key",
            "hover": "hover"}.get(t, "end")


def action_marks(action: dict | None, points, width: int, height: int) -> list[Mark]:
    """SVG marks for one step's action, in screenshot pixels."""
    if not action or not width or not height:
        return []
    scale = max(width, height)
    r, stroke, font = max(6, scale // 110), max(2, scale // 480), max(12, scale // 70)
    kind, colour = kind_of(action), COLOURS[kind_of(action)]
    t = action.get("type")
    marks: list[Mark] = []
    if t == "click" or t == "hover":
        x, y = points[0]
        if kind == "right":
            marks.append({"el": "rect", "attrs": {"x": x - r, "y": y - r, "width": 2 * r, "height": 2 * r,
                                                  "fill": "none", "stroke": colour, "stroke-width": stroke}})
            marks += _cross(x, y, r, colour, stroke) + _label(x, y, "right click", colour, font, width, height)
        elif kind == "middle":
            marks += [_circle(x, y, r, colour, stroke)] + _cross(x, y, r, colour, stroke)
            marks += _label(x, y, "middle click", colour, font, width, height)
        elif kind == "hover":
            marks += [_circle(x, y, r, colour, stroke, **{"stroke-dasharray": f"{stroke * 2} {stroke * 2}"})]
            marks += _label(x, y, "hover", colour, font, width, height)
        else:
            marks += [_circle(x, y, r, colour, stroke)] + _cross(x, y, r, colour, stroke)
    elif t == "double_click":
        x, y = points[0]
        marks += [_circle(x, y, r, colour, stroke), _circle(x, y, round(r * 1.7, 1), colour, stroke)]
        marks += _cross(x, y, r, colour, stroke) + _label(x, y, "double click", colour, font, width, height)
    elif t == "drag":
        (x1, y1), (x2, y2) = points[0], points[1]
        marks += [_circle(x1, y1, r, colour, stroke),
                  _line(x1, y1, x2, y2, colour, stroke, **{"marker-end": "url(#arrow-drag)"}),
                  {"el": "rect", "attrs": {"x": x2 - r / 2, "y": y2 - r / 2, "width": r, "height": r, "fill": colour}}]
        marks += _label(x1, y1, "drag", colour, font, width, height)
    elif t == "scroll":
        x, y = points[0]
        d = max(40, width // 25)
        dx, dy = {"up": (0, -d), "down": (0, d), "left": (-d, 0), "right": (d, 0)}[action.get("direction", "down")]
        x0, y0, x1, y1 = (x, y, x + dx, y + dy)
        if not (0 <= x1 < width and 0 <= y1 < height):  # near an edge: point inwards from there
            x0, y0, x1, y1 = (x - dx, y - dy, x, y)
        marks += [_circle(x, y, r, colour, stroke),
                  _line(x0, y0, x1, y1, colour, stroke * 1.5, **{"marker-end": "url(#arrow-scroll)"})]
        marks += _label(x, y, f"scroll {action.get('direction', 'down')} x{action.get('amount', 5)}", colour, font,
                        width, height, anchor_above=False)
    elif t == "type":
        marks += _banner("typed: " + repr(action.get("text", ""))[1:-1], colour, font, width, height)
    elif t == "key":
        marks += _banner("key: " + "+".join(action.get("keys", [])), colour, font, width, height)
    elif t == "wait":
        marks += _banner(f"wait {action.get('seconds', 0):g} s", COLOURS["end"], font, width, height)
    elif t in ("done", "fail"):
        marks += _banner(t.upper() + (f": {action.get('answer') or action.get('reason') or ''}"), COLOURS["end"],
                         font, width, height)
    return marks


def box_marks(box, label: str, width: int, height: int) -> list[Mark]:
    """A located element's pixel box [x1, y1, x2, y2] with its description."""
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        return []
    x1, y1, x2, y2 = box
    scale = max(width, height, 1)
    stroke, font = max(2, scale // 480), max(12, scale // 70)
    colour = COLOURS["locate"]
    return [{"el": "rect", "attrs": {"x": x1, "y": y1, "width": max(1, x2 - x1), "height": max(1, y2 - y1),
                                     "fill": colour, "fill-opacity": "0.12", "stroke": colour, "stroke-width": stroke}},
            *_label(x1, y1, label, colour, font, width, height)]
