"""Model backends: one ChatRequest in, one Reply out, whatever serves the model.

Importing this package does not import torch or transformers; the in-process
backend and the tiny checkpoint builder load them when used.
"""

from model_backend.base import Backend, BackendError
from model_backend.messages import request_to_openai_messages
from model_backend.openai_compat import OpenAICompatibleBackend
from model_backend.reasoning import split_reasoning
from model_backend.scripted import ScriptedBackend
from model_backend.tiny import build_tiny_checkpoint
from model_backend.transformers_backend import TransformersBackend
from model_backend.types import ChatRequest, ImagePart, Message, Reply, TextPart, Usage

__all__ = [
    "Backend", "BackendError", "ChatRequest", "ImagePart", "Message", "OpenAICompatibleBackend", "Reply",
    "ScriptedBackend", "TextPart", "TransformersBackend", "Usage", "build_tiny_checkpoint",
    "request_to_openai_messages", "split_reasoning",
]
