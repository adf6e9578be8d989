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

A user's template is code from a file, so it runs in jinja2's immutable
sandbox (no ``__globals__``, no attribute of Python internals, nothing that
mutates), may include only files of its own folder, and is bounded: rendering
stops after ``RENDER_SECONDS`` (a Python trace on the template's own frames, so
an endless loop cannot outlast it), its text after ``MAX_PROMPT_CHARS``, and no
call or operator may build anything bigger. Before, ``{{ cycler.__init__.
__globals__.os.system(...) }}`` ran a shell command and a ``range(10**9)`` loop
ignored every timeout.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from deskpilot.agent.records.userfiles import read_user_file
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


RENDER_SECONDS = 5.0  # a real prompt renders in milliseconds
MAX_PROMPT_CHARS = 1_000_000  # GLM-4.5V's whole context is 64K tokens
T = TypeVar("T")


class _TemplateTimeout(Exception):
    pass


def _too_big(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_PROMPT_CHARS


class _Sandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox, plus: no call and no ``*``/``**`` may build more than a prompt can hold."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and max(1, abs(left).bit_length()) * right > 64 * 1024:
                raise SecurityError(f"{left} ** {right} is too big for a prompt")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_PROMPT_CHARS:
                    raise SecurityError(f"repeating {len(seq)} item(s) {n} times is too big for a prompt")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # jinja's own parameter names
        if any(_too_big(v) for v in (*args, *kwargs.values())):
            raise SecurityError(f"a number above {MAX_PROMPT_CHARS} passed to a call: too big for a prompt")
        return super().call(__context, __obj, *args, **kwargs)


def _capped_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that refuses sizes no prompt needs (``center(10**9)``, ``batch(10**9, 0)``, ...)."""
    @functools.wraps(func)  # keeps jinja's pass_context / pass_environment marks
    def capped(*args: Any, **kwargs: Any) -> Any:
        if any(_too_big(v) for v in (*args[1:], *kwargs.values())):  # args[0]: the value (or context)
            raise SecurityError(f"a number above {MAX_PROMPT_CHARS} passed to a filter: too big for a prompt")
        return func(*args, **kwargs)
    return capped


class _FolderLoader(jinja2.BaseLoader):
    """``{% include %}`` / ``{% import %}`` of files in the template's own folder, read like any user file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = (self.folder / template).resolve()
        if not path.is_relative_to(self.folder) or path == self.folder:
            raise jinja2.TemplateNotFound(f"{template} (only files in {self.folder} can be included)")
        return read_user_file(path, "included template"), str(path), lambda: True


def _environment(loader: jinja2.BaseLoader | None = None, sandboxed: bool = False) -> jinja2.Environment:
    # Plain text, not HTML: no autoescape; a typo in a variable name is an error, not "".
    kind = _Sandbox if sandboxed else jinja2.Environment
    env = kind(loader=loader, autoescape=False, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    if sandboxed:
        env.filters = {name: _capped_filter(f) for name, f in env.filters.items()}
        env.globals.pop("lipsum", None)  # lorem ipsum generator: no use in a prompt
    return env


@lru_cache(maxsize=8)
def builtin_template(name: str) -> jinja2.Template:
    return _environment(jinja2.FileSystemLoader(str(TEMPLATES))).get_template(f"{name}.j2")


def _bounded(work: Callable[[], T], folder: str) -> T:
    """``work()``, stopped after RENDER_SECONDS of running the template's own code.

    A trace function sees every line the template's compiled code runs (only
    frames of the template and of files it included from ``folder``; library
    code is left untraced), so even an empty loop checks the clock on each
    turn. A signal or a thread could not do this: the loop runs in whatever
    thread renders, and a thread cannot be stopped from outside. The previous
    tracer (a debugger, coverage) is put back afterwards.
    """
    deadline = time.monotonic() + RENDER_SECONDS

    def on_line(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _TemplateTimeout
        return on_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        name = frame.f_code.co_filename
        return on_line if name == "<template>" or name.startswith(folder) else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        return work()
    finally:
        sys.settrace(previous)


def _template_error(path: Any, err: BaseException) -> ConfigError:
    """One line for anything a user's template did wrong."""
    where = f"prompt template {path}" if path else "prompt template"
    if isinstance(err, ConfigError):
        return err
    if isinstance(err, _TemplateTimeout):
        return ConfigError(f"{where}: still rendering after {RENDER_SECONDS:g} s (an endless or huge loop?); stopped")
    if isinstance(err, RecursionError):
        return ConfigError(f"{where}: recursion too deep (a template or macro that includes or calls itself?)")
    if isinstance(err, jinja2.TemplateSyntaxError):
        return ConfigError(f"{where}, line {err.lineno}: {err.message}")
    if isinstance(err, jinja2.UndefinedError):
        return ConfigError(f"{where}: {err.message}")
    if isinstance(err, SecurityError):
        return ConfigError(f"{where}: not allowed in a template: {err}")
    if isinstance(err, jinja2.TemplateError):
        return ConfigError(f"{where}: {err}")
    return ConfigError(f"{where}: {err.__class__.__name__}: {err}")


def load_template(path: Path | str) -> jinja2.Template:
    """A user's template file (sandboxed, see the module's notes), or a one-line ConfigError."""
    path = Path(path)
    source = read_user_file(path, "prompt template")
    env = _environment(_FolderLoader(path.parent), sandboxed=True)
    try:  # compiling folds constants, which runs filters: bounded too
        template = _bounded(lambda: env.from_string(source, template_class=_UserTemplate), _UserTemplate.folder)
    except Exception as err:  # a user's code: every failure becomes one line
        raise _template_error(path, err) from None
    assert isinstance(template, _UserTemplate)
    template.folder = str(path.parent.resolve()) + "/"
    template.path = path
    return template


class _UserTemplate(jinja2.Template):
    """A user's template: rendering is bounded in time and in size."""

    folder = "<template>"  # where files it may include live (set by load_template)
    path: Path | None = None  # the file it came from, for error messages

    def render(self, *args: Any, **kwargs: Any) -> str:
        def collect() -> str:
            out, size = [], 0
            chunks: Iterator[str] = self.generate(*args, **kwargs)
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_PROMPT_CHARS:
                    raise SecurityError(f"the prompt grew past {MAX_PROMPT_CHARS} characters")
                out.append(chunk)
            return "".join(out)

        return _bounded(collect, self.folder)


def render_parts(template: jinja2.Template, variables: dict[str, Any], images: list[Any],
                 current: int, image_format: Literal["png", "jpeg"]) -> list[Part]:
    """Render and split at the image markers; ``images[current]`` is appended if never placed."""
    try:
        text = template.render(**variables)
    except Exception as err:  # a user's code: every failure becomes one line
        raise _template_error(getattr(template, "path", None), err) from None
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
