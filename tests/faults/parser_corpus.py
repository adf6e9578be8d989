"""Seeded hostile replies for the parser fault tests (shared by the fuzz and limit tests).

Fragments are what GLM-4.5V writes (box tokens, calls, JSON actions, Memory,
think tags) plus what breaks parsers (unclosed quotes, deep brackets, huge
numbers, lone surrogates, NaN). Real fixture replies seed the mutations.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures" / "glm_replies"
B, E = "<|begin_of_box|>", "<|end_of_box|>"
FRAGMENTS = [
    B, E, "<think>", "</think>", "Action:", "Memory:", "Thought: ", "\n", " ", "'", '"', "\\", "\\u", "\\ud800",
    "(", ")", "[", "]", "{", "}", ",", "=", ":", "<bbox>", "</bbox>", "<point>", "</point>",
    "left_click(", "right_click(", "left_double_click(", "left_drag(", "scroll(", "type(", "key(", "hover(",
    "DONE(", "FAIL(", "WAIT()", "start_box=", "end_box=", "content=", "keys=", "direction=", "step=",
    "element_info=", "'[500,500]'", "[[1,2,3,4]]", '"action_type": ', '"box_2d": ', '{"action_type": "click", ',
    "9" * 50, "9" * 400, "1e999", "NaN", "-Infinity", "-0", "999", "0.5", "\ud800", "\udfff", "\x00", "\u200b",
    "ctrl+c", "enter", "down", "中文", "😀", "```python", "```", "**Action**:", "Memory: [", "[" * 30, "]" * 30,
]


def seeds() -> list[str]:
    replies = json.loads((FIXTURES / "conformance.json").read_text(encoding="utf-8"))
    errors = json.loads((FIXTURES / "errors.json").read_text(encoding="utf-8"))
    return [case["content"] for case in replies + errors if isinstance(case.get("content"), str)]


def mutate(rng: random.Random, text: str) -> str:
    """One to four edits: insert a fragment, delete a span, duplicate a span, or truncate."""
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randint(0, len(text))
        if op == 0:
            text = text[:pos] + rng.choice(FRAGMENTS) + text[pos:]
        elif op == 1:
            text = text[:pos] + text[pos + rng.randint(1, 20):]
        elif op == 2:
            span = text[pos : pos + rng.randint(1, 40)]
            text = text[:pos] + span * rng.randint(2, 30) + text[pos:]
        elif op == 3:
            text = text[:pos]
        else:
            text = text[:pos] + chr(rng.randint(0, 0x10FFFF)) + text[pos:]
    return text


def generated(rng: random.Random) -> str:
    """A reply built from fragments only."""
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 60)))


def replies(seed: int, count: int):
    """``count`` hostile replies, the same for the same seed: (content, reasoning)."""
    rng = random.Random(seed)
    base = seeds()
    for index in range(count):
        content = mutate(rng, rng.choice(base)) if index % 3 else generated(rng)
        reasoning = generated(rng) if index % 7 == 0 else None
        yield content, reasoning


def large(rng: random.Random, size: int = 990_000) -> str:
    """A reply of about ``size`` characters: one hostile unit repeated, maybe inside boxes."""
    unit = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))
    if rng.random() < 0.5:
        unit = B + unit * rng.randint(1, 30) + E
    return (unit * (size // max(len(unit), 1) + 1))[:size]


def _summary(count: int) -> None:
    """``python tests/faults/parser_corpus.py N``: the figures RELIABILITY.md quotes."""
    import collections
    import time

    from deskpilot.actions.parse import ParseError, parse_glm_reply

    outcomes: collections.Counter[str] = collections.Counter()
    messages: collections.Counter[str] = collections.Counter()
    worst, total, other = 0.0, 0.0, 0
    for content, reasoning in replies(seed=15, count=count):
        started = time.perf_counter()
        try:
            parse_glm_reply(content, reasoning, width=1920, height=1080)
            outcomes["parsed"] += 1
        except ParseError as err:
            outcomes["ParseError"] += 1
            messages[str(err)[:60]] += 1
        except Exception:  # counted: must stay 0
            other += 1
        elapsed = time.perf_counter() - started
        total, worst = total + elapsed, max(worst, elapsed)
    print(f"{count} replies: {dict(outcomes)}, other exceptions {other}, "
          f"mean {total / count * 1e3:.3f} ms, worst {worst * 1e3:.1f} ms, {len(messages)} distinct messages")
    for message, seen in messages.most_common(8):
        print(f"  {seen:7d}  {message}")


if __name__ == "__main__":
    import sys

    _summary(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
