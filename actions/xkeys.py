"""Canonical key names and characters to X keysyms.

Pure lookups (no display connection), so the parent process can validate an
action before anything reaches the worker.
"""

from __future__ import annotations

from Xlib import XK

from deskpilot.actions.keys import KEY_NAMES

XK.load_keysym_group("xf86")

_NAMED_KEYSYMS = {
    "enter": "Return", "tab": "Tab", "space": "space", "backspace": "BackSpace",
    "delete": "Delete", "esc": "Escape", "insert": "Insert", "home": "Home",
    "end": "End", "pageup": "Prior", "pagedown": "Next", "up": "Up",
    "down": "Down", "left": "Left", "right": "Right", "ctrl": "Control_L",
    "shift": "Shift_L", "alt": "Alt_L", "win": "Super_L",
    "capslock": "Caps_Lock", "numlock": "Num_Lock", "scrolllock": "Scroll_Lock",
    "printscreen": "Print", "pause": "Pause", "menu": "Menu",
    "volumeup": "XF86_AudioRaiseVolume", "volumedown": "XF86_AudioLowerVolume",
    "volumemute": "XF86_AudioMute",
}
_CONTROL_CHARS = {"\n": "Return", "\r": "Return", "\t": "Tab"}


class KeysymError(ValueError):
    """A key name or character that no X keysym can produce."""


def char_keysym(char: str) -> int:
    """Keysym that types ``char``: Latin-1 and legacy names via XK, else Unicode."""
    if char in _CONTROL_CHARS:
        return XK.string_to_keysym(_CONTROL_CHARS[char])
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code < 0xE000:
        raise KeysymError(f"cannot type control character U+{code:04X}")
    if code < 0x100:
        return code  # ASCII and Latin-1 keysyms equal their code points
    return 0x1000000 + code


def key_keysym(name: str) -> int:
    """Keysym for a canonical key name from ``actions.keys.KEY_NAMES``."""
    if name not in KEY_NAMES:
        raise KeysymError(f"unknown key name {name!r}")
    if name in _NAMED_KEYSYMS:
        keysym = XK.string_to_keysym(_NAMED_KEYSYMS[name])
    elif name[0] == "f" and name[1:].isdigit():
        keysym = XK.string_to_keysym(name.upper())
    else:
        keysym = char_keysym(name)
    if not keysym:
        raise KeysymError(f"no X keysym for key {name!r}")
    return keysym


def text_keysyms(text: str) -> list[int]:
    """Keysyms for every character of ``text``, or KeysymError naming the first bad one."""
    return [char_keysym(ch) for ch in text]
