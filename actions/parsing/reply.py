"""A whole GLM-4.5V reply -> ParsedStep: thought, reasoning, action, memory."""

from __future__ import annotations

import re
from typing import Any

from deskpilot.actions.models import Done, Fail
from deskpilot.actions.parsing.desktop import Mapped, map_call
from deskpilot.actions.parsing.errors import ParseError
from deskpilot.actions.parsing.locate import Budget, Found, find_action
from deskpilot.actions.parsing.memory import find_memory
from deskpilot.actions.parsing.mobile import map_object
from deskpilot.actions.parsing.scanner import Call
from deskpilot.actions.parsing.thinking import join_reasoning, split_thinking, strip_tokens
from deskpilot.actions.step import ParsedStep

MAX_CHARS = 1_000_000
MAX_THOUGHT = 20_000
NO_ACTION = (
    "no action found: reply with one call from the action space, such as left_click(start_box='[x,y]')"
)
_LABEL = re.compile(r"^[ \t>*#_-]*(?:reason|thought|explanation|action)[ \t*_]*[:：][ \t*_]*", re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)
_BLANKS = re.compile(r"\n{3,}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    text = _FENCE.sub("", _LABEL.sub("", strip_tokens(text)))
    text = "\n".join(line.strip() for line in text.splitlines())
    return _BLANKS.sub("\n\n", text).strip()


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in sorted(spans):
        if start >= pos:
            out.append(text[pos:start])
            pos = end
    out.append(text[pos:])
    return " ".join(out)


def _map(found: Found, width: int, height: int) -> Mapped:
    if isinstance(found.payload, Call):
        return map_call(found.payload, width, height)
    return map_object(found.payload, width, height)


def _thought_and_memory(text: str, found: Found | None) -> tuple[str, list[Any] | None]:
    spans = [(found.start, found.end)] if found else []
    rest = _without(text, spans)
    memory, span = find_memory(rest)
    return _clean(_without(rest, [span] if span else [])), memory


def _locate(visible: str, thinking: str, open_think: bool, reasoning: str | None) -> tuple[str, Found, bool]:
    """Where the action is: the visible text, else an unclosed think, else the reasoning."""
    budget = Budget()  # one scan budget for the whole reply keeps the parse linear
    found = find_action(visible, budget, bare=True)
    if found is not None:
        return visible, found, True
    for text in (thinking if open_think else "", reasoning or ""):
        found = find_action(text, budget) if text else None
        if found is not None:
            return text, found, False
    raise ParseError(NO_ACTION)


def _parse(content: str, reasoning: str | None, width: int, height: int) -> ParsedStep:

    if len(content) + len(reasoning or "") > MAX_CHARS:
        raise ParseError("the reply is too long")
    visible, thinking, open_think = split_thinking(content)
    source, found, in_visible = _locate(visible, thinking, open_think, reasoning)
    mapped = _map(found, width, height)
    thought, memory = _thought_and_memory(visible, found if in_visible else None)
    if len(thought) > MAX_THOUGHT:
        raise ParseError(f"the explanation before the action is longer than {MAX_THOUGHT} characters: keep it short")
    return ParsedStep(
        action=mapped.action,
        thought=thought,
        reasoning=join_reasoning(thinking, reasoning),
        action_text=strip_tokens(source[found.start : found.end]).strip(),
        model_points=mapped.model_points,
        element_info=mapped.element_info,
        memory=memory,
        raw=content,
    )


def _valid(value: Any) -> Any:
    """Text that can be written as UTF-8: lone surrogates become U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_valid(item) for item in value]
    if isinstance(value, dict):
        return {_valid(key): _valid(item) for key, item in value.items()}
    return value


def _without_surrogates(step: ParsedStep) -> ParsedStep:
    """A reply may carry lone surrogates (JSON allows them); records and history must not."""
    action = step.action
    if isinstance(action, Done) and action.answer:
        action = action.model_copy(update={"answer": _valid(action.answer)})
    elif isinstance(action, Fail):
        action = action.model_copy(update={"reason": _valid(action.reason)})
    fields = ("thought", "reasoning", "action_text", "element_info", "memory", "raw")
    return step.model_copy(update={"action": action, **{name: _valid(getattr(step, name)) for name in fields}})


def parse_glm_reply(content: str, reasoning: str | None = None, *, width: int, height: int) -> ParsedStep:
    """Parse one GLM-4.5V reply into a ParsedStep (pixels on a width x height screen).

    Raises ParseError, and nothing else, for any reply text.
    """
    if width < 1 or height < 1:
        raise ValueError(f"screen size must be positive, got {width}x{height}")
    if not isinstance(content, str) or not (reasoning is None or isinstance(reasoning, str)):
        raise ParseError("the reply must be text")
    try:
        step = _parse(content, reasoning, width, height)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("the action is nested too deeply: write one plain call") from None
    except Exception as exc:  # defensive: a parser bug must not crash the loop; say which
        detail = f"{type(exc).__name__}: {str(exc)[:120]}".strip().rstrip(":")
        raise ParseError(f"the parser failed on this reply (internal error {detail}); "
                         "reply with one plain call such as left_click(start_box='[x,y]')") from exc
    return _without_surrogates(step)  # also those a JSON escape (\\ud800) decoded into
