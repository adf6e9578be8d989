"""Perception: screen capture, image encoding, GLM-4.5V resize and token budgets."""

from deskpilot.perception.capture import CaptureError, Capturer, capture
from deskpilot.perception.encode import data_url, encode, encode_jpeg, encode_png, encode_webp
from deskpilot.perception.observation import Observation
from deskpilot.perception.resize import IMAGE_MARKER_TOKENS, image_tokens, resize_for_model, scale, smart_resize

__all__ = [
    "IMAGE_MARKER_TOKENS",
    "CaptureError",
    "Capturer",
    "Observation",
    "capture",
    "data_url",
    "encode",
    "encode_jpeg",
    "encode_png",
    "encode_webp",
    "image_tokens",
    "resize_for_model",
    "scale",
    "smart_resize",
]
