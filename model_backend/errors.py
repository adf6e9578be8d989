"""Turn the openai SDK's exceptions into one-line BackendErrors a user can act on."""

from __future__ import annotations

import re
from typing import Callable

import openai

from deskpilot.errors import BackendUnreachable
from deskpilot.model_backend.base import BackendError

KEY_ENV_VARS = ("DESKPILOT_API_KEY", "OPENAI_API_KEY")
_PINNED = re.compile(r"pinned to '([^']+)'")


def server_message(exc: openai.APIStatusError, limit: int = 200) -> str:
    """The server's own error text, whatever JSON shape it used."""
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            val = body.get(key)
            if isinstance(val, dict):
                val = val.get("message") or val.get("detail")
            if val:
                return str(val)[:limit]
    return str(exc.message)[:limit]


def is_model_not_found(exc: openai.APIStatusError, model: str) -> bool:
    """404 about a model (vLLM, SGLang) or a 400 naming the model (transformers serve)."""
    text = server_message(exc, 1000).lower()
    if exc.status_code == 404:
        return "model" in text
    return exc.status_code in (400, 422) and ("pinned to" in text or f"model `{model.lower()}`" in text
                                               or f"model '{model.lower()}'" in text)


def model_not_found(model: str, base_url: str, exc: openai.APIStatusError,
                    list_models: Callable[[], list[str]]) -> BackendError:
    """Say which models the server does offer, or that it would not say."""
    offered: list[str] = []
    pinned = _PINNED.search(server_message(exc, 1000))
    if pinned:
        offered.append(pinned.group(1))
    try:
        offered += [m for m in list_models() if m not in offered]
        listing = f"it offers: {', '.join(offered)}" if offered else "it lists no models"
    except Exception as err:  # any failure of the listing is reported, not raised
        why = f"HTTP {err.status_code}" if isinstance(err, openai.APIStatusError) else type(err).__name__
        listing = (f"it offers: {', '.join(offered)}; " if offered else "") + f"(listing /models failed: {why})"
    return BackendUnreachable(f"model '{model}' is not served at {base_url}; {listing}", status_code=404)


def translate(exc: openai.OpenAIError, *, base_url: str, timeout: float, tries: int) -> BackendError:
    """Everything except model-not-found, which needs a follow-up request."""
    if isinstance(exc, openai.APITimeoutError):
        return BackendError(f"model server at {base_url} did not answer within {timeout:g} s ({tries} tries)")
    if isinstance(exc, openai.APIConnectionError):
        return BackendUnreachable(f"cannot reach the model server at {base_url} ({tries} tries): is it running?")
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return BackendUnreachable(
            f"model server at {base_url} refused the API key (HTTP {exc.status_code}): "
            f"set {' or '.join(KEY_ENV_VARS)}", status_code=exc.status_code,
        )
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        if code == 404:
            return BackendUnreachable(f"no chat endpoint at {base_url} (HTTP 404): does the URL end in /v1?", status_code=404)
        again = f" after {tries} tries" if code == 429 or code >= 500 else ""
        return BackendError(f"model server at {base_url} answered HTTP {code}{again}: {server_message(exc)}")
    return BackendError(f"model call to {base_url} failed: {type(exc).__name__}: {exc}"[:300])
