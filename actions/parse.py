"""Public face of the reply parser: ``from actions.parse import ParseError``."""

from actions.coords import box_to_pixels, to_pixel, to_pixels
from actions.parsing.boxes import parse_box
from actions.parsing.errors import ParseError
from actions.parsing.reply import parse_glm_reply
from actions.parsing.thinking import split_thinking, strip_tokens

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
