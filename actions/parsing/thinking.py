"""Separate the model's thinking from its visible answer.

vLLM's glm45 reasoning parser moves ``<think>`` text out of the content, but
when a tag is missing (e.g. the output hit max_tokens) everything arrives in
the content: ``<think>...`` with no close, ``...</think>`` with no open, or
the whole ``<think>...</think>`` block.
"""

from __future__ import annotations

import bisect
import re

BEGIN_BOX = "<|begin_of_box|>"
END_BOX = "<|end_of_box|>"
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_TOKENS = re.compile(r"<\|(?:begin|end)_of_box\|>|</?answer>|<\|/?(?:assistant|user|endoftext)\|>", re.IGNORECASE)


def _boxed(content: str) -> list[tuple[int, int]]:
    """Spans of closed <|begin_of_box|>...<|end_of_box|> pairs: a think tag there is text (typed, say)."""
    spans, start = [], content.find(BEGIN_BOX)
    while start >= 0:
        end = content.find(END_BOX, start + len(BEGIN_BOX))
        if end < 0:
            break
        spans.append((start, end))
        start = content.find(BEGIN_BOX, end + len(END_BOX))
    return spans


def _tags(pattern: re.Pattern, content: str, spans: list[tuple[int, int]]) -> list[re.Match]:
    starts = [a for a, _ in spans]  # sorted, not overlapping: one bisect per tag (replies can be 1 MB)

    def inside(pos: int) -> bool:
        i = bisect.bisect_left(starts, pos) - 1
        return i >= 0 and pos < spans[i][1]

    return [m for m in pattern.finditer(content) if not inside(m.start())]


def split_thinking(content: str) -> tuple[str, str, bool]:
    """Return (visible text, thinking text, whether a think block was left open)."""
    spans = _boxed(content)
    closes = _tags(_THINK_CLOSE, content, spans)
    if closes:
        close = closes[-1]
        head, visible = content[: close.start()], content[close.end() :]
        openings = _tags(_THINK_OPEN, head, spans)
        if openings:
            opening = openings[0]
            return head[: opening.start()] + visible, head[opening.end() :], False
        return visible, head, False
    openings = _tags(_THINK_OPEN, content, spans)
    if openings:
        return content[: openings[0].start()], content[openings[0].end() :], True
    return content, "", False


def strip_tokens(text: str) -> str:
    """Remove box tokens and other special tokens (for history and answers)."""
    return _TOKENS.sub("", text)


def join_reasoning(*parts: str | None) -> str | None:
    """The non-empty reasoning parts joined, or None."""
    kept = [p.strip() for p in parts if p and p.strip()]
    return "\n".join(kept) or None
