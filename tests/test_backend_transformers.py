"""TransformersBackend on the tiny checkpoint: the whole real stack, in process, on CPU."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend_fixtures import desktop_screenshot, expected_prompt_tokens, tiny_checkpoint  # noqa: F401
from deskpilot.model_backend import BackendError, ChatRequest, ImagePart, Message, TextPart
from deskpilot.perception.resize import IMAGE_MARKER_TOKENS, image_tokens

pytestmark = pytest.mark.slow
TASK = "Click the OK button."


@pytest.fixture(scope="module")
def backend(tiny_checkpoint):
    from deskpilot.model_backend import TransformersBackend

    b = TransformersBackend(tiny_checkpoint, max_new_tokens=8)
    yield b
    b.close()


def request(img, *, thinking=True, max_tokens=6, **kw) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=[TextPart(text=TASK), ImagePart(image=img)])],
                       thinking=thinking, max_tokens=max_tokens, **kw)


def test_image_tokens_match_perception_estimate(backend):
    inputs = backend.encode(request(desktop_screenshot()))
    ids = inputs["input_ids"][0].tolist()
    tok = backend.processor.tokenizer
    assert ids.count(tok.convert_tokens_to_ids("<|image|>")) == image_tokens(1920, 1080) == 2691
    markers = ids.count(tok.convert_tokens_to_ids("<|begin_of_image|>")) + ids.count(
        tok.convert_tokens_to_ids("<|end_of_image|>"))
    assert markers == IMAGE_MARKER_TOKENS
    assert inputs["image_grid_thw"].tolist() == [[1, 1092 // 14, 1932 // 14]]


def test_generate_on_a_full_hd_screenshot(backend, tiny_checkpoint):
    t = time.monotonic()
    reply = backend.complete(request(desktop_screenshot(), max_tokens=6))
    elapsed = time.monotonic() - t
    assert reply.usage.prompt_tokens == expected_prompt_tokens(tiny_checkpoint, TASK, (1920, 1080), thinking=True)
    assert 1 <= reply.usage.completion_tokens <= 6
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert "<|endoftext|>" not in reply.content and reply.finish_reason in ("stop", "length")
    assert 0 < reply.latency_ms <= elapsed * 1000 + 1
    assert elapsed < 20


def test_greedy_is_repeatable_and_thinking_changes_the_prompt(backend):
    img = desktop_screenshot()
    a, b = backend.complete(request(img)), backend.complete(request(img))
    assert (a.content, a.reasoning) == (b.content, b.reasoning)
    off = backend.complete(request(img, thinking=False))
    assert off.usage.prompt_tokens - a.usage.prompt_tokens == 3


def test_max_new_tokens_caps_the_request(backend):
    reply = backend.complete(request(desktop_screenshot(320, 240), max_tokens=100))
    assert reply.usage.completion_tokens <= 8


def test_sampling_and_async(backend):
    reply = asyncio.run(backend.acomplete(request(desktop_screenshot(320, 240), temperature=0.9, top_p=0.9)))
    assert 1 <= reply.usage.completion_tokens <= 6
    assert reply.usage.prompt_tokens > image_tokens(320, 240)


def test_not_a_checkpoint_folder(tmp_path):
    from deskpilot.model_backend import TransformersBackend

    with pytest.raises(BackendError, match=r"no checkpoint at .* \(config.json missing\)"):
        TransformersBackend(tmp_path)
    with pytest.raises(BackendError, match="unknown dtype 'float13'"):
        TransformersBackend(tmp_path / "x", dtype="float13")
