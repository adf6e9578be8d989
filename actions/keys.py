"""Canonical key names shared by the parser (which normalizes model text to
them) and the executor (which maps them to X keysyms)."""

from __future__ import annotations

import string

_NAMED = {
    "enter", "tab", "space", "backspace", "delete", "esc", "insert",
    "home", "end", "pageup", "pagedown", "up", "down", "left", "right",
    "ctrl", "shift", "alt", "win", "capslock", "numlock", "scrolllock",
    "printscreen", "pause", "menu",
    "volumeup", "volumedown", "volumemute",
}
_FUNCTION = {f"f{i}" for i in range(1, 25)}
_CHARS = set(string.ascii_lowercase) | set(string.digits) | set("`-=[]\\;',./~!@#$%^&*()_+{}|:\"<>?")

KEY_NAMES: frozenset[str] = frozenset(_NAMED | _FUNCTION | _CHARS)

ALIASES: dict[str, str] = {
    "control": "ctrl", "ctl": "ctrl", "ctrlleft": "ctrl", "ctrlright": "ctrl",
    "lctrl": "ctrl", "rctrl": "ctrl", "control_l": "ctrl", "control_r": "ctrl",
    "shiftleft": "shift", "shiftright": "shift", "lshift": "shift", "rshift": "shift",
    "shift_l": "shift", "shift_r": "shift",
    "altleft": "alt", "altright": "alt", "lalt": "alt", "ralt": "alt", "option": "alt",
    "alt_l": "alt", "alt_r": "alt",
    "super": "win", "meta": "win", "cmd": "win", "command": "win", "winleft": "win",
    "winright": "win", "windows": "win", "super_l": "win", "super_r": "win",
    "return": "enter", "ret": "enter", "kp_enter": "enter",
    "escape": "esc",
    "del": "delete",
    "ins": "insert",
    "bksp": "backspace", "back_space": "backspace", "backspace_key": "backspace",
    "pgup": "pageup", "page_up": "pageup", "prior": "pageup",
    "pgdn": "pagedown", "pgdown": "pagedown", "page_down": "pagedown", "next": "pagedown",
    "arrowup": "up", "arrowdown": "down", "arrowleft": "left", "arrowright": "right",
    "uparrow": "up", "downarrow": "down", "leftarrow": "left", "rightarrow": "right",
    "spacebar": "space", "caps_lock": "capslock", "caps": "capslock",
    "num_lock": "numlock", "scroll_lock": "scrolllock",
    "prtsc": "printscreen", "prtscr": "printscreen", "print": "printscreen",
    "print_screen": "printscreen", "apps": "menu", "contextmenu": "menu",
    "plus": "+", "minus": "-", "comma": ",", "period": ".", "slash": "/",
    "backslash": "\\", "semicolon": ";", "apostrophe": "'", "quote": "'",
    "grave": "`", "backquote": "`", "equal": "=", "equals": "=",
    "bracketleft": "[", "bracketright": "]",
    # names in the official GLM-V key maps (desktop eval agents)
    "backtick": "`", "dot": ".", "tilde": "~", "leftbracket": "[", "rightbracket": "]",
    "forwarddelete": "delete", "fwddelete": "delete", "forward_delete": "delete",
    "keypadenter": "enter", "kpenter": "enter", "numpadenter": "enter",
    "opt": "alt", "alt_gr": "alt", "pagedn": "pagedown",
    "super_key": "win", "windows_key": "win", "win_l": "win", "win_r": "win",
    "exclamation": "!", "at": "@", "hash": "#", "dollar": "$", "percent": "%",
    "caret": "^", "ampersand": "&", "asterisk": "*", "underscore": "_",
    "colon": ":", "question": "?", "less": "<", "greater": ">", "pipe": "|",
    "doublequote": "\"", "parenleft": "(", "parenright": ")", "braceleft": "{", "braceright": "}",
}


def normalize_key(name: str) -> str:
    """Return the canonical name for a key, or raise ValueError naming it."""
    raw = name.strip()
    if len(raw) == 1:
        key = raw.lower()
    else:
        key = raw.lower().replace(" ", "").replace("-", "_")
        key = ALIASES.get(key, ALIASES.get(key.replace("_", ""), key.replace("_", "")))
    if key not in KEY_NAMES:
        raise ValueError(f"unknown key name {name!r}")
    return key
