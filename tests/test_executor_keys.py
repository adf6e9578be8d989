"""Key names and characters to X keysyms (no display needed)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from Xlib import XK

from deskpilot.actions.keys import KEY_NAMES
from deskpilot.actions.xkeys import KeysymError, char_keysym, key_keysym, text_keysyms


@pytest.mark.parametrize("name", sorted(KEY_NAMES))
def test_every_canonical_key_has_a_keysym(name):
    assert key_keysym(name) > 0


@pytest.mark.parametrize("name,keysym", [
    ("enter", "Return"), ("esc", "Escape"), ("win", "Super_L"), ("pageup", "Prior"),
    ("f12", "F12"), ("<", "less"), ("a", "a"), ("'", "apostrophe"),
])
def test_named_keys(name, keysym):
    assert key_keysym(name) == XK.string_to_keysym(keysym)


def test_unknown_key_is_rejected():
    with pytest.raises(KeysymError, match="hyperdrive"):
        key_keysym("hyperdrive")


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"])
def test_control_characters_cannot_be_typed(char):
    with pytest.raises(KeysymError, match="U\\+"):
        char_keysym(char)


def test_text_layout_keys():
    assert text_keysyms("a\n\tb") == [0x61, XK.XK_Return, XK.XK_Tab, 0x62]


@given(st.characters(min_codepoint=0xA0, max_codepoint=0x10FFFF, exclude_categories=("Cs",)))
def test_any_printable_character_has_a_unicode_or_latin1_keysym(char):
    keysym = char_keysym(char)
    assert keysym == (ord(char) if ord(char) < 0x100 else 0x1000000 + ord(char))
