"""Fixed phrases of the GLM-V prompts that are not part of a template.

No special token ever appears here: the model writes the box tokens itself.
"""

from __future__ import annotations

SECRET_NOTE = "{name} for this task: {value}"

# How a reply that could not be performed appears in the next prompt's history.
FAILED_NOTE = "(this reply could not be performed: {error}; answer again with one call from the action space)"
FAILED_CHARS = 600

LOCATE = """Find this element in the screenshot: {description}
Answer with its bounding box [x1,y1,x2,y2] in whole thousandths (0-{top}) of the screenshot's width and height."""

ASK = """{question}
Answer briefly, from what the screenshot shows."""
