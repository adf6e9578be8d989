"""What the loop needs from any model: one request in, one reply out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from deskpilot.model_backend.types import ChatRequest, Reply


from deskpilot.errors import BackendError

__all__ = ["Backend", "BackendError"]


@runtime_checkable
class Backend(Protocol):
    def complete(self, request: ChatRequest) -> Reply: ...

    async def acomplete(self, request: ChatRequest) -> Reply: ...

    def close(self) -> None: ...
