"""Split GLM's ``<think>...</think>`` prefix from the visible answer."""

from __future__ import annotations

import re

_THINK = re.compile(r"^\s*<think>(.*?)</think>\s*", re.DOTALL)


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Return (reasoning, content). Without a closed think block, all is content.

    An unclosed ``<think>`` (output cut by max_tokens) stays in content, as
    vLLM's glm45 reasoning parser does, so the action parser sees everything.
    """
    m = _THINK.match(text)
    if not m:
        return None, text
    return m.group(1).strip(), text[m.end():]
