"""What the loop needs from any model: one request in, one reply out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from deskpilot.model_backend.types import ChatRequest, Reply


class BackendError(RuntimeError):
    """A model call failed; the message is short and says what to do about it."""


@runtime_checkable
class Backend(Protocol):
    def complete(self, request: ChatRequest) -> Reply: ...

    async def acomplete(self, request: ChatRequest) -> Reply: ...

    def close(self) -> None: ...
