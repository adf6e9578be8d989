# Reply parsing and coordinate mapping (the GLM-4.5V dialect's parser).
from deskpilot.actions.coords import box_to_pixels, to_pixel, to_pixels
from deskpilot.actions.parse import ParseError, parse_box, parse_glm_reply

# Performing actions inside a sandbox's display (the executor).
from deskpilot.actions.errors import ActionError, ExecutorError
from deskpilot.actions.executor import Executor

# The typed actions themselves.
from deskpilot.actions.models import (
    Action, Click, Done, DoubleClick, Drag, Fail, Hover, Key, Scroll, Type, Wait, action_from_json,
)
from deskpilot.actions.step import ParsedStep

__all__ = [
    "Action", "ActionError", "Click", "Done", "DoubleClick", "Drag", "Executor", "ExecutorError", "Fail", "Hover",
    "Key", "ParseError", "ParsedStep", "Scroll", "Type", "Wait", "action_from_json", "box_to_pixels", "parse_box",
    "parse_glm_reply", "to_pixel", "to_pixels",
]
