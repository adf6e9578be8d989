"""Public face of the reply parser: ``from actions.parse import ParseError``."""

from deskpilot.actions.coords import box_to_pixels, to_pixel, to_pixels
from deskpilot.actions.parsing.boxes import parse_box
from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.reply import parse_glm_reply
from deskpilot.actions.parsing.thinking import split_thinking, strip_tokens

__all__ = [
    "ParseError",
    "box_to_pixels",
    "parse_box",
    "parse_glm_reply",
    "split_thinking",
    "strip_tokens",
    "to_pixel",
    "to_pixels",
]
