"""OpenAICompatibleBackend: message encoding, flavors, errors and retries.

The server tests run against a REAL `transformers serve` process on the tiny
checkpoint; the FakeServer is used only for HTTP answers a real server cannot
be made to give on demand (429, 5xx, 401, a vLLM-style 404).
"""

from __future__ import annotations

import asyncio
import base64
import io
import time

import pytest
from PIL import Image

from backend_fixtures import (  # noqa: F401 (fixtures)
    FakeServer, completion_body, desktop_screenshot, expected_prompt_tokens, free_port, tiny_checkpoint,
    tiny_server,
)
from deskpilot.model_backend import (
    BackendError, ChatRequest, ImagePart, Message, OpenAICompatibleBackend, TextPart, request_to_openai_messages,
)
from deskpilot.model_backend.openai_compat import extra_body, normalize_base_url, resolve_api_key

TASK = "Click the OK button."


def image_request(img: Image.Image, *, thinking: bool = True, max_tokens: int = 6, **kw) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=[TextPart(text=TASK), ImagePart(image=img)])],
                       max_tokens=max_tokens, thinking=thinking, **kw)


def decode_data_url(url: str) -> Image.Image:
    head, b64 = url.split(",", 1)
    return Image.open(io.BytesIO(base64.b64decode(b64)))


# ---- encoding and per-flavor switches (no server) ----

def test_messages_carry_images_as_lossless_data_urls():
    img = desktop_screenshot(320, 200)
    req = ChatRequest(messages=[
        Message(role="system", content=[TextPart(text="sys")]),
        Message(role="user", content=[TextPart(text="look"), ImagePart(image=img)]),
    ])
    msgs = request_to_openai_messages(req)
    assert msgs[0] == {"role": "system", "content": "sys"}
    part = msgs[1]["content"][1]
    assert part["image_url"]["url"].startswith("data:image/png;base64,")
    back = decode_data_url(part["image_url"]["url"]).convert("RGB")
    assert back.size == (320, 200) and back.tobytes() == img.tobytes()


def test_jpeg_when_backend_or_part_asks():
    img = desktop_screenshot(320, 200)
    req = ChatRequest(messages=[Message(role="user", content=[
        ImagePart(image=img), ImagePart(image=img, format="jpeg")])])
    png_default = request_to_openai_messages(req)[0]["content"]
    assert png_default[0]["image_url"]["url"].startswith("data:image/png;")
    assert png_default[1]["image_url"]["url"].startswith("data:image/jpeg;")
    all_jpeg = request_to_openai_messages(req, image_format="jpeg")[0]["content"]
    assert all(p["image_url"]["url"].startswith("data:image/jpeg;") for p in all_jpeg)
    assert decode_data_url(all_jpeg[0]["image_url"]["url"]).format == "JPEG"


@pytest.mark.parametrize("flavor,thinking,expected", [
    ("vllm", False, {"chat_template_kwargs": {"enable_thinking": False}, "skip_special_tokens": False}),
    ("sglang", True, {"chat_template_kwargs": {"enable_thinking": True}, "skip_special_tokens": False}),
    ("transformers", False, {"chat_template_kwargs": {"enable_thinking": False}}),
    ("zai", False, {"thinking": {"type": "disabled"}}),
    ("zai", True, {"thinking": {"type": "enabled"}}),
    ("openai", True, {}),
])
def test_extra_body_per_flavor(flavor, thinking, expected):
    req = ChatRequest(messages=[], thinking=thinking)
    assert extra_body(req, flavor) == expected
    assert extra_body(req.model_copy(update={"extra": {"seed": 3}}), flavor) == {**expected, "seed": 3}


def test_api_key_resolution(monkeypatch):
    monkeypatch.delenv("DESKPILOT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert resolve_api_key(None) == "EMPTY"
    monkeypatch.setenv("OPENAI_API_KEY", "k-openai")
    assert resolve_api_key(None) == "k-openai"
    monkeypatch.setenv("DESKPILOT_API_KEY", "k-desk")
    assert resolve_api_key(None) == "k-desk"
    assert resolve_api_key("k-opt") == "k-opt"


def test_base_url_normalisation_and_bad_options():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://api.example/api/paas/v4") == "https://api.example/api/paas/v4"
    with pytest.raises(BackendError, match="needs a scheme"):
        OpenAICompatibleBackend("h:8000", "m")
    with pytest.raises(BackendError, match="unknown flavor 'vlm'"):
        OpenAICompatibleBackend("http://h:8000", "m", flavor="vlm")


# ---- fake server: retries and status codes a real server will not produce on demand ----

def test_retries_429_and_500_then_succeeds():
    answers = [(429, {"message": "slow down"}), (500, {"message": "boom"}), (200, completion_body("ok", "hmm"))]
    with FakeServer(answers) as fake:
        b = OpenAICompatibleBackend(fake.base_url, "glm-4.5v", max_retries=3)
        reply = b.complete(image_request(desktop_screenshot(64, 64)))
    assert fake.hits == 3
    assert (reply.content, reply.reasoning, reply.usage.total_tokens) == ("ok", "hmm", 18)
    assert reply.latency_ms > 0 and reply.finish_reason == "stop"


def test_persistent_503_gives_up_after_documented_tries():
    with FakeServer([(503, {"message": "overloaded"})]) as fake:
        b = OpenAICompatibleBackend(fake.base_url, "glm-4.5v", max_retries=2)
        t = time.monotonic()
        with pytest.raises(BackendError, match=r"HTTP 503 after 3 tries: overloaded") as info:
            b.complete(image_request(desktop_screenshot(64, 64)))
        elapsed = time.monotonic() - t
    assert fake.hits == 3
    assert 0.5 < elapsed < 4  # backoff 0.5 s + 1 s, less up to 25% jitter
    assert fake.base_url in str(info.value)


def test_401_names_the_key_variables():
    with FakeServer([(401, {"error": {"message": "bad key"}})]) as fake:
        b = OpenAICompatibleBackend(fake.base_url, "glm-4.5v", api_key="wrong")
        with pytest.raises(BackendError, match="DESKPILOT_API_KEY or OPENAI_API_KEY"):
            b.complete(image_request(desktop_screenshot(64, 64)))
    assert fake.hits == 1  # not retried


def test_vllm_style_404_lists_served_models():
    body = {"object": "error", "message": "The model `glm-4.5` does not exist.", "type": "NotFoundError", "code": 404}
    with FakeServer([(404, body)], models=["glm-4.5v", "other"]) as fake:
        b = OpenAICompatibleBackend(fake.base_url, "glm-4.5")
        with pytest.raises(BackendError, match=r"model 'glm-4\.5' is not served at .*; it offers: glm-4\.5v, other$"):
            b.complete(image_request(desktop_screenshot(64, 64)))


def test_async_reads_reasoning_content():
    with FakeServer([(200, completion_body("<|begin_of_box|>DONE()<|end_of_box|>", "all done"))]) as fake:
        b = OpenAICompatibleBackend(fake.base_url, "glm-4.5v")
        reply = asyncio.run(b.acomplete(image_request(desktop_screenshot(64, 64))))
    assert reply.content == "<|begin_of_box|>DONE()<|end_of_box|>" and reply.reasoning == "all done"


# ---- a REAL `transformers serve` on the tiny checkpoint ----

@pytest.mark.slow
def test_image_request_returns_text_and_exact_usage(tiny_server, tiny_checkpoint):
    base_url, model = tiny_server
    b = OpenAICompatibleBackend(base_url, model, flavor="transformers")
    reply = b.complete(image_request(desktop_screenshot(), max_tokens=6))
    assert isinstance(reply.content, str) and "<|endoftext|>" not in reply.content
    assert 1 <= reply.usage.completion_tokens <= 6
    want = expected_prompt_tokens(tiny_checkpoint, TASK, (1920, 1080), thinking=True)
    assert reply.usage.prompt_tokens == want
    assert reply.usage.total_tokens == want + reply.usage.completion_tokens
    assert reply.latency_ms > 0 and reply.finish_reason in ("stop", "length")
    b.close()


@pytest.mark.slow
def test_thinking_switch_reaches_the_server(tiny_server, tiny_checkpoint):
    base_url, model = tiny_server
    b = OpenAICompatibleBackend(base_url, model, flavor="transformers")
    img = desktop_screenshot()
    on = b.complete(image_request(img, thinking=True, max_tokens=2)).usage.prompt_tokens
    off = b.complete(image_request(img, thinking=False, max_tokens=2)).usage.prompt_tokens
    assert off == expected_prompt_tokens(tiny_checkpoint, TASK, (1920, 1080), thinking=False)
    assert off - on == 3  # "<think>", "</think>", "\n" close an empty think block


@pytest.mark.slow
def test_wrong_model_name_names_the_served_model(tiny_server):
    base_url, model = tiny_server
    b = OpenAICompatibleBackend(base_url, "glm-4.6v", flavor="transformers", max_retries=3)
    t = time.monotonic()
    with pytest.raises(BackendError) as info:
        b.complete(image_request(desktop_screenshot(64, 64)))
    assert time.monotonic() - t < 10
    msg = str(info.value)
    assert msg.startswith(f"model 'glm-4.6v' is not served at {base_url}; it offers: {model}")
    assert "\n" not in msg


@pytest.mark.slow
def test_timeout_is_reported_with_url_and_seconds(tiny_server):
    base_url, model = tiny_server
    b = OpenAICompatibleBackend(base_url, model, flavor="transformers", timeout=0.05, max_retries=1)
    t = time.monotonic()
    with pytest.raises(BackendError, match=rf"^model server at {base_url} did not answer within 0.05 s \(2 tries\)$"):
        b.complete(image_request(desktop_screenshot(), max_tokens=64))
    assert 0.4 < time.monotonic() - t < 5  # two 0.05 s tries around one 0.375-0.5 s backoff


def test_stopped_server_is_connection_refused_after_retries():
    port = free_port()  # bound then closed: nothing listens there
    b = OpenAICompatibleBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=2)
    t = time.monotonic()
    with pytest.raises(BackendError, match=rf"^cannot reach the model server at http://127.0.0.1:{port}/v1 \(3 tries\)"):
        b.complete(image_request(desktop_screenshot(64, 64)))
    assert 1.0 < time.monotonic() - t < 4  # backoff 0.5 + 1 s, less up to 25% jitter


@pytest.mark.slow
def test_eight_concurrent_async_requests(tiny_server, tiny_checkpoint):
    base_url, model = tiny_server
    b = OpenAICompatibleBackend(base_url, model, flavor="transformers", timeout=120)
    img = desktop_screenshot(960, 540)

    async def run():
        try:
            return await asyncio.gather(*(b.acomplete(image_request(img, max_tokens=3)) for _ in range(8)))
        finally:
            await b.aclose()

    replies = asyncio.run(run())
    want = expected_prompt_tokens(tiny_checkpoint, TASK, (960, 540), thinking=True)
    assert len(replies) == 8
    assert all(r.usage.prompt_tokens == want and 1 <= r.usage.completion_tokens <= 3 for r in replies)
