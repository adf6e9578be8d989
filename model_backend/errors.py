"""Turn the openai SDK's exceptions into one-line BackendErrors a user can act on."""

from __future__ import annotations

import re
from typing import Any, Callable

import openai

from deskpilot.errors import BackendUnreachable
from deskpilot.model_backend.base import BackendError
from deskpilot.model_backend.capped import ReplyTooLarge

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


def tries_taken(exc: openai.OpenAIError, default: int) -> int:
    """How many requests the SDK really sent: it numbers them in x-stainless-retry-count."""
    request: Any = getattr(exc, "request", None)
    response: Any = getattr(exc, "response", None)
    if request is None and response is not None:
        request = response.request
    try:
        return int(request.headers["x-stainless-retry-count"]) + 1
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError):
        return default


def _times(tries: int) -> str:
    return "1 try" if tries == 1 else f"{tries} tries"


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after") or "")
    except (TypeError, ValueError, AttributeError):
        return None


def _cause(exc: BaseException) -> BaseException:
    """The innermost exception under the SDK's wrapper (httpx's own error)."""
    seen = exc
    while True:
        inner = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
        if inner is None:
            return seen
        seen = inner


def _connection(exc: openai.APIConnectionError, base_url: str, tries: int) -> BackendError:
    cause = _cause(exc)
    name = type(cause).__name__
    detail = str(cause).splitlines()[0][:160] if str(cause) else name
    if name in ("ConnectError", "ConnectionRefusedError", "ConnectTimeout") or isinstance(cause, ConnectionRefusedError):
        return BackendUnreachable(f"cannot reach the model server at {base_url} ({_times(tries)}): is it running?")
    if name in ("RemoteProtocolError", "ReadError", "ProtocolError", "LocalProtocolError", "IncompleteRead"):
        return BackendError(f"the model server at {base_url} broke off or garbled its answer ({_times(tries)}): {detail}")
    return BackendError(f"the connection to the model server at {base_url} failed ({_times(tries)}): {name}: {detail}")


def not_json(exc: ValueError, base_url: str) -> BackendError:
    """A 200 whose body is not JSON (cut off, or an HTML page): say so, not 'Expecting value'."""
    where = f", character {exc.pos}" if hasattr(exc, "pos") else ""
    reason = getattr(exc, "msg", str(exc))
    return BackendError(f"the model server at {base_url} sent a body that is not valid JSON ({reason}{where}): "
                        "it was cut off, or the server is not an OpenAI-compatible API")


def translate(exc: openai.OpenAIError, *, base_url: str, timeout: float, tries: int) -> BackendError:
    """Everything except model-not-found, which needs a follow-up request.

    ``tries`` is the most the SDK would send; the message counts what it did send.
    """
    tries = tries_taken(exc, tries)
    if isinstance(exc, ReplyTooLarge):
        return BackendError(f"model server at {base_url}: its {exc} (1 try, not retried): a model's reply is far "
                            "smaller, so this is a misbehaving server or not a model server")
    if isinstance(exc, openai.APITimeoutError):
        return BackendError(f"model server at {base_url} did not answer within {timeout:g} s ({_times(tries)})")
    if isinstance(exc, openai.APIConnectionError):
        return _connection(exc, base_url, tries)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return BackendUnreachable(
            f"model server at {base_url} refused the API key (HTTP {exc.status_code}): "
            f"set {' or '.join(KEY_ENV_VARS)}", status_code=exc.status_code,
        )
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        if code == 404:
            return BackendUnreachable(f"no chat endpoint at {base_url} (HTTP 404): does the URL end in /v1?", status_code=404)
        again = ""
        if code == 429 or code >= 500:
            wait = _retry_after(exc)
            again = f" after {_times(tries)}"
            if wait is not None and wait > 60:
                again = f" and asked to wait {wait:g} s before trying again, so it was not retried (gave up after {_times(tries)})"
        return BackendError(f"model server at {base_url} answered HTTP {code}{again}: {server_message(exc)}",
                            status_code=code, retryable=code == 429 or code >= 500)
    return BackendError(f"model call to {base_url} failed: {type(exc).__name__}: {exc}"[:300])
