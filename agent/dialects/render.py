"""Prompt templates (jinja2) rendered into ONE user message of text and images.

The built-in prompts are templates too (``templates/<dialect>.j2``), so a
``--prompt-template FILE`` replaces exactly what they do and nothing more:
parsing, screenshots and history stay ours.

Variables every template gets (see docs/prompt-templates.md):

- ``task``, ``platform``, ``action_space`` (the ``###`` sections),
  ``actions`` (list of ``{signature, description}``, one per call name),
  ``memory`` (JSON text), ``screen`` (``{width, height}``),
  ``coordinate_max`` (999, or 1000 for GLM-4.1V), ``notes`` (list of lines),
  ``history_screenshots`` and ``history_percent``, ``user_response``;
- ``history``: list of steps with ``n``, ``thought``, ``action`` (the call as
  written plus any note such as "not performed: ..."), ``image`` (a
  screenshot placeholder, or "" when the step's image is left out);
- ``screenshot``: the placeholder of the current screenshot. If a template
  never places it, the current screenshot goes after the text.

A placeholder is an opaque marker; wherever it lands, that image is sent.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2

from deskpilot.errors import ConfigError
from deskpilot.model_backend.types import ImagePart, Part, TextPart

TEMPLATES = Path(__file__).parent / "templates"
_MARK = re.compile("\x00image:(\\d+)\x00")
# Special tokens (<|begin_of_box|>, <|image|>, <think> ...): a tokenizer would turn them into the
# real tokens, which the model never saw in a user turn. They can come in with model text (history,
# errors quoting the format) or a task; none is ever sent.
SPECIAL = re.compile(r"<\|[A-Za-z0-9_/.-]{1,40}\|>|</?think>", re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` without special tokens; a token between words leaves one space."""
    return SPECIAL.sub(lambda m: " " if _between_words(text, m) else "", text)


def _between_words(text: str, match: re.Match) -> bool:
    before = text[match.start() - 1] if match.start() else " "
    after = text[match.end()] if match.end() < len(text) else " "
    return not before.isspace() and not after.isspace()


def image_marker(index: int) -> str:
    return f"\x00image:{index}\x00"


def _environment(loader: jinja2.BaseLoader | None = None) -> jinja2.Environment:
    # Plain text, not HTML: no autoescape; a typo in a variable name is an error, not "".
    return jinja2.Environment(loader=loader, autoescape=False, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined)


@lru_cache(maxsize=8)
def builtin_template(name: str) -> jinja2.Template:
    return _environment(jinja2.FileSystemLoader(str(TEMPLATES))).get_template(f"{name}.j2")


def load_template(path: Path | str) -> jinja2.Template:
    """A user's template file, or a one-line ConfigError saying what is wrong with it."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"prompt template {path} does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise ConfigError(f"prompt template {path} cannot be read: {err.__class__.__name__}") from None
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"prompt template {path}, line {err.lineno}: {err.message}") from None


def render_parts(template: jinja2.Template, variables: dict[str, Any], images: list[Any],
                 current: int, image_format: Literal["png", "jpeg"]) -> list[Part]:
    """Render and split at the image markers; ``images[current]`` is appended if never placed."""
    try:
        text = template.render(**variables)
    except jinja2.UndefinedError as err:
        raise ConfigError(f"prompt template: {err.message}") from None
    except jinja2.TemplateError as err:
        raise ConfigError(f"prompt template: {err}") from None
    parts: list[Part] = []
    placed: set[int] = set()
    pos = 0
    for mark in _MARK.finditer(text):
        if mark.start() > pos:
            parts.append(TextPart(text=scrub(text[pos:mark.start()])))
        index = int(mark.group(1))
        if index < len(images):
            parts.append(ImagePart(image=images[index], format=image_format))
            placed.add(index)
        pos = mark.end()
    tail = text[pos:]
    if tail.strip() or (tail and not parts):  # a template's final newline is not worth a part
        parts.append(TextPart(text=scrub(tail)))
    if current not in placed:
        parts.append(ImagePart(image=images[current], format=image_format))
    return parts


def prompt_text(messages: list[Any]) -> str:
    """The exact text of a request, images written as ``<image WxH>``; roles only if several."""
    chunks = []
    for message in messages:
        body = "".join(p.text if isinstance(p, TextPart) else f"<image {p.image.width}x{p.image.height}>"
                       for p in message.content)
        chunks.append(body if len(messages) == 1 else f"[{message.role}]\n{body}")
    return "\n".join(chunks)
