"""Variables in workflow strings: ``{name}`` is replaced, ``{{`` and ``}}`` are literal braces.

Only ``{identifier}`` counts as a variable, so JSON or CSS written in a step
(``{"a": 1}``) stays as it is. Secret values are substituted like any other
variable for the desktop, and replaced by ``***NAME***`` in everything a run
writes (``Redactor``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deskpilot.errors import ConfigError

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(r"\{\{|\}\}|\{(" + NAME + r")\}")
NAME_RE = re.compile(NAME + r"\Z")


def references(text: str) -> list[str]:
    """Variable names used in ``text``, in order."""
    return [m.group(1) for m in _TOKEN.finditer(text) if m.group(1)]


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``{name}`` replaced; ConfigError naming an unknown variable."""

    def one(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if name is None:
            return token[0]
        if name not in values:
            known = ", ".join(sorted(values)) or "none"
            raise ConfigError(f"unknown variable {{{name}}} (defined: {known})")
        return str(values[name])

    return _TOKEN.sub(one, text)


def substitute_all(data: Any, values: Mapping[str, str]) -> Any:
    """Substitute in every string of a nested structure of dicts, lists and scalars."""
    if isinstance(data, str):
        return substitute(data, values)
    if isinstance(data, Mapping):
        return {k: substitute_all(v, values) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [substitute_all(v, values) for v in data]
    return data


def strings_in(data: Any):
    """Every string in a nested structure (to find the variables it uses)."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, Mapping):
        for value in data.values():
            yield from strings_in(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            yield from strings_in(value)


def parse_assignment(text: str) -> tuple[str, str]:
    """``name=value`` from the command line."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not NAME_RE.match(name):
        raise ConfigError(f"--var takes name=value with a plain name, got {text!r}")
    return name, value


class Redactor:
    """Replaces secret values by ``***NAME***`` (longest first, so overlapping secrets stay hidden)."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = {k: v for k, v in secrets.items() if v}
        self._order = sorted(self.secrets.items(), key=lambda kv: len(kv[1]), reverse=True)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for name, secret in self._order:
                value = value.replace(secret, f"***{name}***")
            return value
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value
