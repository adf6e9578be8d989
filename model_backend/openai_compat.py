"""Any OpenAI-compatible server: vLLM, SGLang, the Z.ai API, `transformers serve`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from typing import Any, Literal
from urllib.parse import urlsplit

import openai

from deskpilot.model_backend import errors, validate
from deskpilot.model_backend.base import BackendError
from deskpilot.model_backend.capped import MAX_REPLY_BYTES, AsyncCappedClient, CappedClient
from deskpilot.model_backend.messages import ImageFormat, request_to_openai_messages
from deskpilot.model_backend.types import ChatRequest, Reply

Flavor = Literal["auto", "vllm", "sglang", "zai", "openai", "transformers"]
FLAVORS: tuple[str, ...] = ("auto", "vllm", "sglang", "zai", "openai", "transformers")
# How servers name request fields they do not know: `transformers serve` (422) and OpenAI-style (400).
_UNKNOWN_FIELDS = (re.compile(r"Unexpected fields in the request: \{([^}]*)\}"),
                   re.compile(r"Unrecognized request arguments? supplied: ([\w, ]+)"))
PLACEHOLDER_KEY = "EMPTY"  # vLLM, SGLang and transformers serve accept any key


def resolve_api_key(api_key: str | None) -> str:
    """The option, else DESKPILOT_API_KEY, else OPENAI_API_KEY, else a placeholder."""
    for value in (api_key, *(os.environ.get(v) for v in errors.KEY_ENV_VARS)):
        if value:
            return value
    return PLACEHOLDER_KEY


def normalize_base_url(base_url: str) -> str:
    """Accept `http://host:8000` as well as `http://host:8000/v1`."""
    url = base_url.rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port is the check: "http://h:99999" raises here)
    except ValueError as err:
        raise BackendError(f"base URL '{base_url}' is not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise BackendError(f"base URL '{base_url}' needs a scheme, e.g. http://127.0.0.1:8000/v1")
    return url + "/v1" if parts.path in ("", "/") else url


def extra_body(request: ChatRequest, flavor: Flavor) -> dict[str, Any]:
    """Per-flavor switches: thinking on/off and keeping GLM's box tokens."""
    body: dict[str, Any] = {}
    if flavor in ("auto", "vllm", "sglang", "transformers"):
        body["chat_template_kwargs"] = {"enable_thinking": request.thinking}
    if flavor in ("auto", "vllm", "sglang"):  # transformers serve rejects unknown fields (422)
        body["skip_special_tokens"] = False
    if flavor == "zai":
        body["thinking"] = {"type": "enabled" if request.thinking else "disabled"}
    body.update(request.extra)
    return body


def unknown_fields(exc: openai.OpenAIError) -> set[str]:
    """Request fields a 400/422 answer says the server does not accept (empty if it says nothing such)."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422):
        return set()
    text = errors.server_message(exc, 2000)
    for pattern in _UNKNOWN_FIELDS:
        found = pattern.search(text)
        if found:
            return {name.strip(" '\"") for name in found.group(1).split(",") if name.strip(" '\"")}
    return set()


def _reply(resp: Any, started: float, base_url: str = "") -> Reply:
    return validate.reply_from_completion(resp, started, base_url)  # one line per malformed field


class OpenAICompatibleBackend:
    """Chat completions over HTTP with the official SDK.

    Retries (the SDK's own, ``max_retries`` times): connection errors,
    timeouts, HTTP 408/409/429/5xx, with backoff 0.5 s doubling up to 8 s
    (less 0-25% jitter). Other failures raise a one-line BackendError.

    Any OpenAI-compatible server works without naming its kind: the extras
    vLLM needs are sent, and if a server refuses some of them by name (as
    `transformers serve` does with HTTP 422), the call is repeated once
    without them and the backend remembers not to send them again.

    A reply is read up to ``max_reply_bytes`` (16 MB; see capped.py), then the
    call fails with one line saying so, without retrying.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, flavor: Flavor = "auto",
                 timeout: float = 120.0, max_retries: int = 3, image_format: ImageFormat = "png",
                 max_reply_bytes: int = MAX_REPLY_BYTES):
        if flavor not in FLAVORS:
            raise BackendError(f"unknown flavor '{flavor}': choose one of {', '.join(FLAVORS)}")
        self.base_url = normalize_base_url(base_url)
        self.model, self.flavor, self.timeout = model, flavor, timeout
        self.max_retries, self.image_format = max_retries, image_format
        self._key = resolve_api_key(api_key)
        self.max_reply_bytes = max_reply_bytes
        self._client = openai.OpenAI(base_url=self.base_url, api_key=self._key, timeout=timeout,
                                     max_retries=max_retries,
                                     http_client=CappedClient(max_reply_bytes, timeout=timeout))
        self._aclient: openai.AsyncOpenAI | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self.dropped_fields: set[str] = set()  # extras this server refused; never sent again

    @property
    def api_key_set(self) -> bool:
        """True when a real key (not the placeholder) is held: apps must not be able to read this process."""
        return self._key != PLACEHOLDER_KEY

    def _params(self, request: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": request_to_openai_messages(request, self.image_format),
            "max_tokens": request.max_tokens,
            "extra_body": {k: v for k, v in extra_body(request, self.flavor).items() if k not in self.dropped_fields},
        }
        for name in ("temperature", "top_p", "stop"):
            if getattr(request, name) is not None:
                params[name] = getattr(request, name)
        return params

    def _error(self, exc: openai.OpenAIError) -> BackendError:
        if isinstance(exc, openai.APIStatusError) and errors.is_model_not_found(exc, self.model):
            return errors.model_not_found(self.model, self.base_url, exc, self.list_models)
        return errors.translate(exc, base_url=self.base_url, timeout=self.timeout, tries=self.max_retries + 1)

    def list_models(self) -> list[str]:
        """Model ids from GET /models (one quick try, no retries)."""
        client = self._client.with_options(max_retries=0, timeout=min(self.timeout, 10.0))
        return [m.id for m in client.models.list().data]

    def _drop_refused(self, exc: openai.OpenAIError, params: dict[str, Any]) -> bool:
        """Forget the extras the server refused; True if there is something left to retry without."""
        refused = unknown_fields(exc) & set(params["extra_body"])
        self.dropped_fields |= refused
        return bool(refused)

    def complete(self, request: ChatRequest) -> Reply:
        started = time.perf_counter()
        for _ in range(3):
            params = self._params(request)
            try:
                resp = self._client.chat.completions.create(**params)
            except openai.OpenAIError as exc:
                if not self._drop_refused(exc, params):
                    raise self._error(exc) from None
                continue
            except json.JSONDecodeError as exc:
                raise errors.not_json(exc, self.base_url) from None
            return _reply(resp, started, self.base_url)
        raise BackendError(f"model server at {self.base_url} keeps refusing request fields")

    def _async_client(self) -> openai.AsyncOpenAI:
        """One AsyncOpenAI per event loop: its connection pool belongs to the loop."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            self._aclient = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._key, timeout=self.timeout,
                                               max_retries=self.max_retries,
                                               http_client=AsyncCappedClient(self.max_reply_bytes, timeout=self.timeout))
            self._aloop = loop
        return self._aclient

    async def acomplete(self, request: ChatRequest) -> Reply:
        started = time.perf_counter()
        params = await asyncio.to_thread(self._params, request)  # image encoding off the loop
        for _ in range(3):
            try:
                resp = await self._async_client().chat.completions.create(**params)
            except openai.OpenAIError as exc:
                if not self._drop_refused(exc, params):
                    raise await asyncio.to_thread(self._error, exc) from None
                params = {**params, "extra_body": {k: v for k, v in params["extra_body"].items()
                                                   if k not in self.dropped_fields}}
                continue
            except json.JSONDecodeError as exc:
                raise errors.not_json(exc, self.base_url) from None
            return _reply(resp, started, self.base_url)
        raise BackendError(f"model server at {self.base_url} keeps refusing request fields")

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.close()
            self._aclient = self._aloop = None

    def close(self) -> None:
        self._client.close()
        self._aclient = self._aloop = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend({self.base_url!r}, model={self.model!r}, flavor={self.flavor!r})"
