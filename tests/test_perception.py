"""Capture from a real sandbox display, encoders, and GLM-4.5V resize arithmetic."""

from __future__ import annotations

import base64
import io

import pytest
from hypothesis import example, given, settings, strategies as st
from PIL import Image, ImageChops, ImageStat

from deskpilot.perception import (
    IMAGE_MARKER_TOKENS,
    CaptureError,
    Capturer,
    capture,
    data_url,
    encode_jpeg,
    encode_png,
    encode_webp,
    image_tokens,
    resize_for_model,
    scale,
    smart_resize,
)
from deskpilot.perception.resize import FACTOR, MAX_PIXELS, MIN_PIXELS
from deskpilot.sandbox import Sandbox

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.mark.parametrize(
    ("size", "resized", "tokens"),
    [
        ((1920, 1080), (1932, 1092), 2691),
        ((960, 540), (952, 532), 646),
        ((1280, 720), (1288, 728), 1196),
        ((2560, 1440), (2548, 1428), 4641),
    ],
)
def test_design_numbers(size, resized, tokens) -> None:
    assert smart_resize(*size) == resized
    assert image_tokens(*size) == tokens
    assert IMAGE_MARKER_TOKENS == 2


@settings(max_examples=200, deadline=None)
@given(st.integers(28, 5000), st.integers(28, 5000))
def test_smart_resize_invariants(width: int, height: int) -> None:
    if max(width, height) / min(width, height) > 200:
        with pytest.raises(ValueError):
            smart_resize(width, height)
        return
    w, h = smart_resize(width, height)
    assert w % FACTOR == 0 and h % FACTOR == 0
    assert w * h <= MAX_PIXELS
    assert w * h >= MIN_PIXELS or w * h >= width * height


def test_too_small_is_rejected() -> None:
    with pytest.raises(ValueError, match="too small"):
        smart_resize(27, 500)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.integers(28, 4000), st.integers(28, 4000))
@example(60, 60)
@example(28, 28)
@example(100, 50)
@example(3840, 2160)
@example(7680, 4320)
def test_matches_transformers_glm4v_processor(width: int, height: int) -> None:
    """Our arithmetic against the real Glm4vImageProcessor with GLM-4.5V's size config."""
    processor = _glm_processor()
    if max(width, height) / min(width, height) > 200:
        return
    patches = processor.get_number_of_image_patches(height, width, {})
    assert image_tokens(width, height) == patches // 4


@pytest.mark.slow
def test_processor_grid_on_a_real_frame() -> None:
    processor = _glm_processor()
    image = Image.new("RGB", (1920, 1080), RED)
    out = processor(images=[image], return_tensors="pt")
    t, gh, gw = out["image_grid_thw"][0].tolist()
    assert (t, gw * 14, gh * 14) == (1, *smart_resize(1920, 1080))
    assert gh * gw // 4 == image_tokens(1920, 1080) == 2691


_PROCESSOR = None


def _glm_processor():
    global _PROCESSOR
    if _PROCESSOR is None:
        pytest.importorskip("torch")
        pytest.importorskip("torchvision")
        glm = pytest.importorskip("transformers.models.glm4v.image_processing_glm4v")
        # GLM-4.5V's preprocessor_config.json "size"
        _PROCESSOR = glm.Glm4vImageProcessor(size={"shortest_edge": 12544, "longest_edge": 9633792})
    return _PROCESSOR


def test_capture_sees_a_known_colour_at_the_right_pixels(sandbox: Sandbox, solid_window) -> None:
    solid_window(sandbox, (100, 200, 300, 150), RED)
    with Capturer(sandbox) as capturer:
        first = capturer.grab()
        frames = [capturer.grab() for _ in range(5)]
        instance = capturer.mss
        assert capturer.mss is instance and capturer.grabs == 6
    assert first.size == (1280, 800) and first.display == sandbox.display
    image = first.image
    assert image.mode == "RGB"
    for xy in [(100, 200), (399, 349), (250, 275)]:
        assert image.getpixel(xy) == RED
    for xy in [(99, 200), (100, 199), (400, 349), (399, 350), (1000, 700)]:
        assert image.getpixel(xy) != RED
    stamps = [first.timestamp] + [f.timestamp for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(f.grab_ms > 0 for f in frames)


def test_two_sandboxes_do_not_cross_talk(solid_window) -> None:
    with Sandbox((640, 480)) as a, Sandbox((640, 480)) as b:
        before = capture(a).image
        solid_window(b, (10, 10, 200, 200), BLUE)
        after = capture(a).image
        assert ImageChops.difference(before, after).getbbox() is None
        assert capture(b.display, b.xauthority).image.getpixel((100, 100)) == BLUE
        assert before.getpixel((100, 100)) != BLUE


def test_capture_error_is_one_line(sandbox: Sandbox, tmp_path) -> None:
    with pytest.raises(CaptureError, match="cannot open display"):
        capture(":4321", tmp_path / "no-cookie")


@pytest.fixture(scope="module")
def frame() -> Image.Image:
    """A real screenshot with text and colour (xterm on a 640x480 display)."""
    with Sandbox((640, 480)) as sb:
        sb.launch(["xterm", "-T", "frame", "-geometry", "60x20+20+20", "-bg", "#204080", "-fg", "yellow"])
        sb.wait_for_window("frame")
        with Capturer(sb) as capturer:
            image = capturer.grab().image
            for _ in range(50):  # until xterm has painted
                if image.getcolors(1 << 16) and len(image.getcolors(1 << 16)) > 3:
                    break
                image = capturer.grab().image
    return image


def test_png_is_lossless(frame: Image.Image) -> None:
    for level in (1, 6):
        decoded = Image.open(io.BytesIO(encode_png(frame, level))).convert("RGB")
        assert ImageChops.difference(decoded, frame).getbbox() is None
    assert len(encode_png(frame, 6)) <= len(encode_png(frame, 1))
    with pytest.raises(ValueError):
        encode_png(frame, 10)


@pytest.mark.parametrize(("encoder", "fmt"), [(encode_jpeg, "JPEG"), (encode_webp, "WEBP")])
def test_lossy_encoders_round_trip(frame: Image.Image, encoder, fmt: str) -> None:
    data = encoder(frame)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == fmt and decoded.size == frame.size
    diff = ImageChops.difference(decoded.convert("RGB"), frame).convert("L")
    assert ImageStat.Stat(diff).mean[0] < 10


@pytest.mark.parametrize(("fmt", "mime"), [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_data_url(frame: Image.Image, fmt: str, mime: str) -> None:
    url = data_url(frame, fmt)
    head, payload = url.split(",", 1)
    assert head == f"data:{mime};base64"
    assert Image.open(io.BytesIO(base64.b64decode(payload))).size == frame.size
    with pytest.raises(ValueError, match="format"):
        data_url(frame, "gif")  # type: ignore[arg-type]


def test_resize_for_model_and_scale() -> None:
    image = Image.new("RGB", (1920, 1080), RED)
    resized = resize_for_model(image)
    assert resized.size == (1932, 1092) and resized.getpixel((900, 500)) == RED
    fits = Image.new("RGB", (1288, 728))
    assert resize_for_model(fits) is fits
    assert resize_for_model(Image.new("RGB", (3840, 2160)), max_pixels=28 * 28 * 1000).size == smart_resize(
        3840, 2160, max_pixels=28 * 28 * 1000
    )
    half = scale(image, 0.5)
    assert half.size == (960, 540) and half.getpixel((10, 10)) == RED
    assert scale(image, 1) is image
    assert scale(image, 0.4).size == (768, 432)
    with pytest.raises(ValueError):
        scale(image, 0)
