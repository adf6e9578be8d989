"""Separate the model's thinking from its visible answer.

vLLM's glm45 reasoning parser moves ``<think>`` text out of the content, but
when a tag is missing (e.g. the output hit max_tokens) everything arrives in
the content: ``<think>...`` with no close, ``...</think>`` with no open, or
the whole ``<think>...</think>`` block.
"""

from __future__ import annotations

import re

BEGIN_BOX = "<|begin_of_box|>"
END_BOX = "<|end_of_box|>"
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_TOKENS = re.compile(r"<\|(?:begin|end)_of_box\|>|</?answer>|<\|/?(?:assistant|user|endoftext)\|>", re.IGNORECASE)


def split_thinking(content: str) -> tuple[str, str, bool]:
    """Return (visible text, thinking text, whether a think block was left open)."""
    close = None
    for close in _THINK_CLOSE.finditer(content):
        pass
    if close is not None:
        head, visible = content[: close.start()], content[close.end() :]
        opening = _THINK_OPEN.search(head)
        if opening:
            return head[: opening.start()] + visible, head[opening.end() :], False
        return visible, head, False
    opening = _THINK_OPEN.search(content)
    if opening:
        return content[: opening.start()], content[opening.end() :], True
    return content, "", False


def strip_tokens(text: str) -> str:
    """Remove box tokens and other special tokens (for history and answers)."""
    return _TOKENS.sub("", text)


def join_reasoning(*parts: str | None) -> str | None:
    """The non-empty reasoning parts joined, or None."""
    kept = [p.strip() for p in parts if p and p.strip()]
    return "\n".join(kept) or None
