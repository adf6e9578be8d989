"""Model backends: one ChatRequest in, one Reply out, whatever serves the model.

Importing this package does not import torch, transformers or the openai SDK;
each backend loads what it needs on first use (keeps `deskpilot --help` fast).
"""

from __future__ import annotations

import importlib

from deskpilot.model_backend.base import Backend, BackendError
from deskpilot.model_backend.types import ChatRequest, ImagePart, Message, Reply, TextPart, Usage

_LAZY = {
    "OpenAICompatibleBackend": "deskpilot.model_backend.openai_compat",
    "TransformersBackend": "deskpilot.model_backend.transformers_backend",
    "ScriptedBackend": "deskpilot.model_backend.scripted",
    "build_tiny_checkpoint": "deskpilot.model_backend.tiny",
    "image_data_url": "deskpilot.model_backend.messages",
    "request_to_openai_messages": "deskpilot.model_backend.messages",
    "split_reasoning": "deskpilot.model_backend.reasoning",
}

__all__ = [
    "Backend", "BackendError", "ChatRequest", "ImagePart", "Message", "OpenAICompatibleBackend", "Reply",
    "ScriptedBackend", "TextPart", "TransformersBackend", "Usage", "build_tiny_checkpoint", "image_data_url",
    "request_to_openai_messages", "split_reasoning",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deskpilot.model_backend' has no attribute {name!r}")
