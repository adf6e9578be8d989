"""Secrets in and out of stored text: what the model may type, no file may hold.

Stored text names a secret as ``***NAME***``; the value comes back only from
the secrets of the run that uses it (a cache, a replay).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every secret value replaced by ***NAME*** (longest first: one may contain another)."""
    for name, secret in sorted(secrets.items(), key=lambda kv: len(kv[1]), reverse=True):
        if secret:
            text = text.replace(secret, f"***{name}***")
    return text


def restore(data: Any, names: Iterable[str], secrets: Mapping[str, str]) -> Any:
    """Every ***NAME*** of ``names`` inside ``data`` (strings, dicts, lists) back to its value."""
    if isinstance(data, str):
        for name in names:
            data = data.replace(f"***{name}***", secrets[name])
        return data
    if isinstance(data, dict):
        return {k: restore(v, names, secrets) for k, v in data.items()}
    if isinstance(data, list):
        return [restore(v, names, secrets) for v in data]
    return data
