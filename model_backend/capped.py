"""HTTP clients for the OpenAI SDK that stop reading a reply past a size cap.

Why: the SDK reads a whole response body into memory before parsing it, so a
server (or anything answering at its address) that sends 50 MB took
`deskpilot run` to 685 MB of memory, and one that sends gigabytes would take
the host down. A GLM-4.5V reply is at most 64K tokens (well under 1 MB of
JSON); ``MAX_REPLY_BYTES`` leaves a wide margin.

The cap counts the bytes after decoding: requests ask for no compression
(``Accept-Encoding: identity``), and a gzip/deflate body sent anyway is
decoded here, a piece at a time, so a small compressed bomb cannot expand
past the cap either. Going over raises ``ReplyTooLarge``, an ``OpenAIError``,
which the SDK passes on without retrying: the same server would send the
same reply again.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import openai

MAX_REPLY_BYTES = 16 * 1024 * 1024
_ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class ReplyTooLarge(openai.OpenAIError):
    """The server's answer passed the cap; what was read is dropped."""

    def __init__(self, url: str, limit: int):
        self.url, self.limit = url, limit
        size = f"{limit / (1024 * 1024):g} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
        super().__init__(f"answer passed {size}; stopped reading it there")


class _Counter:
    """Counts decoded bytes, decoding gzip/deflate itself so the count is of what memory will hold."""

    def __init__(self, response: httpx2.Response, limit: int):
        self.url, self.limit, self.total = str(response.request.url), limit, 0
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        self.inflate = None
        if encoding in _ZLIB_WBITS:
            self.inflate = zlib.decompressobj(_ZLIB_WBITS[encoding])
            del response.headers["content-encoding"]  # decoded here; httpx must not decode it again

    def take(self, chunk: bytes) -> bytes:
        if self.inflate is not None:
            try:
                chunk = self.inflate.decompress(chunk, self.limit - self.total + 1)
            except zlib.error as err:
                raise httpx2.DecodingError(f"bad {self.url} body encoding: {err}") from None
            if self.inflate.unconsumed_tail:
                raise ReplyTooLarge(self.url, self.limit)
        self.total += len(chunk)
        if self.total > self.limit:
            raise ReplyTooLarge(self.url, self.limit)
        return chunk


class _CappedStream(httpx2.SyncByteStream):
    def __init__(self, inner: Any, counter: _Counter):
        self.inner, self.counter = inner, counter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            yield self.counter.take(chunk)

    def close(self) -> None:
        self.inner.close()


class _AsyncCappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, counter: _Counter):
        self.inner, self.counter = inner, counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            yield self.counter.take(chunk)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CappedClient(openai.DefaultHttpxClient):
    """The SDK's own default client, with every response body capped at ``max_reply_bytes``."""

    def __init__(self, max_reply_bytes: int = MAX_REPLY_BYTES, **kwargs: Any):
        super().__init__(headers={"Accept-Encoding": "identity"}, **kwargs)
        self.max_reply_bytes = max_reply_bytes

    def send(self, request: httpx2.Request, *, stream: bool = False, **kwargs: Any) -> httpx2.Response:
        response = super().send(request, stream=True, **kwargs)
        response.stream = _CappedStream(response.stream, _Counter(response, self.max_reply_bytes))
        if not stream:
            try:
                response.read()
            finally:
                response.close()
        return response


class AsyncCappedClient(openai.DefaultAsyncHttpxClient):
    """The async twin of CappedClient."""

    def __init__(self, max_reply_bytes: int = MAX_REPLY_BYTES, **kwargs: Any):
        super().__init__(headers={"Accept-Encoding": "identity"}, **kwargs)
        self.max_reply_bytes = max_reply_bytes

    async def send(self, request: httpx2.Request, *, stream: bool = False, **kwargs: Any) -> httpx2.Response:
        response = await super().send(request, stream=True, **kwargs)
        response.stream = _AsyncCappedStream(response.stream, _Counter(response, self.max_reply_bytes))
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response
