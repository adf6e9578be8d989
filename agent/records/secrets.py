"""Secrets in and out of stored text: what the model may type, no file may hold.

Stored text names a secret as ``***NAME***``; the value comes back only from
the secrets of the run that uses it (a cache, a replay).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """Every string inside ``value`` (dicts, lists, tuples as lists) passed through ``fn``."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [map_strings(v, fn) for v in value]
    return value


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every secret value replaced by ***NAME*** (longest first: one may contain another)."""
    for name, secret in sorted(secrets.items(), key=lambda kv: len(kv[1]), reverse=True):
        if secret:
            text = text.replace(secret, f"***{name}***")
    return text


def restore(data: Any, names: Iterable[str], secrets: Mapping[str, str]) -> Any:
    """Every ***NAME*** of ``names`` inside ``data`` (strings, dicts, lists) back to its value."""
    names = list(names)

    def put_back(text: str) -> str:
        for name in names:
            text = text.replace(f"***{name}***", secrets[name])
        return text

    return map_strings(data, put_back)
