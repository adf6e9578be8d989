"""--image-budget / --history-images: fewer image tokens, the same coordinates, and the token accounting.

The model answers in thousandths of the image it sees; the budgeted image is
a uniform stretch of the original per axis, so the same thousandths must land
on the same original pixel. Tested by drawing a marker, resizing with the
budget, finding the marker in what the model would see and sending the
answer through the real parser and coordinate mapping.
"""

from __future__ import annotations

import random

import pytest
from PIL import Image, ImageDraw

from deskpilot.actions.models import Click
from deskpilot.agent.config.spec import ConfigError, load_config
from deskpilot.agent.dialects import GLM45VDialect
from deskpilot.agent.dialects.base import HistoryEntry
from deskpilot.agent.loop.tokens import PrefixTracker, default_image_tokens, text_tokens
from deskpilot.perception.observation import Observation
from deskpilot.perception.resize import FACTOR, MAX_PIXELS, MIN_PIXELS, budget_pixels, image_tokens

SIZES = [(1920, 1080), (1366, 768), (1001, 777), (2560, 1440), (800, 1280), (1999, 1123), (1279, 719)]
BUDGETS = [200, 600, 1200, 2691, 5000]


def test_budget_forms():
    assert budget_pixels(1200) == budget_pixels("1200") == 1200 * 784
    assert budget_pixels("1000000px") == 1_000_000
    assert budget_pixels("1280x720") == 1280 * 720
    assert budget_pixels("99999999") == MAX_PIXELS  # never above what the model takes
    for bad, words in [("lots", r"tokens \(1200\)"), ("3", "minimum"), ("12x", r"tokens \(1200\)")]:
        with pytest.raises(ValueError, match=words):
            budget_pixels(bad)
    with pytest.raises(ConfigError, match="image_budget"):
        load_config({"image_budget": "lots"}, env={})
    cfg = load_config({"image_budget": "600", "history_images": 2}, env={})
    assert cfg.loop.image_options() == {"max_pixels": 600 * 784, "history_screenshots": 2}
    assert load_config({}, env={"DESKPILOT_IMAGE_BUDGET": "1280x720"}).loop.image_options() == {"max_pixels": 1280 * 720}
    assert load_config({}, env={}).loop.image_options() == {}


def _seen(dialect: GLM45VDialect, image: Image.Image) -> Image.Image:
    request = dialect.build_request("t", Observation(image=image, timestamp=0.0), [])
    return request.messages[0].content[-1].image


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_budget_caps_tokens_and_keeps_the_processor_rule(size):
    w, h = size
    for budget in BUDGETS:
        dialect = GLM45VDialect(max_pixels=budget_pixels(budget))
        sent = _seen(dialect, Image.new("RGB", size))
        tokens = image_tokens(sent.width, sent.height)
        assert tokens <= budget, (size, budget, sent.size)
        assert dialect.image_tokens(dialect.build_request("t", Observation(image=sent, timestamp=0), [])) == tokens + 2
        if sent.size != size:  # resized by us: exactly the processor's 28-multiples, nothing left for it to change
            assert sent.width % FACTOR == 0 and sent.height % FACTOR == 0
            assert abs(sent.width / sent.height - w / h) < 0.05 * w / h
            assert tokens >= 0.7 * budget  # the budget is used, not wasted


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_coordinates_map_to_the_original_screen(size):
    w, h = size
    rng = random.Random(w * h)
    for budget in BUDGETS:
        dialect = GLM45VDialect(max_pixels=budget_pixels(budget))
        for _ in range(3):
            px, py = rng.randrange(20, w - 20), rng.randrange(20, h - 20)
            image = Image.new("L", size, 0)
            ImageDraw.Draw(image).rectangle([px - 6, py - 6, px + 6, py + 6], fill=255)  # a 13 px marker
            sent = _seen(dialect, image.convert("RGB")).convert("L")
            # where the marker is in what the model sees -> the thousandths a perfect model answers
            x1, y1, x2, y2 = sent.point(lambda v: 255 if v > 127 else 0).getbbox()
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            tx, ty = min(999, round(cx / sent.width * 1000)), min(999, round(cy / sent.height * 1000))
            reply = f"There.\n<|begin_of_box|>left_click(start_box='[{tx},{ty}]')<|end_of_box|>\nMemory:\n[]"
            action = dialect.parse(reply, None, w, h).action
            assert isinstance(action, Click)
            # within one thousandth plus one pixel of the model's image, mapped back
            assert abs(action.x - px) <= w / 1000 + w / sent.width, (size, budget, (px, py), (action.x, action.y))
            assert abs(action.y - py) <= h / 1000 + h / sent.height, (size, budget, (px, py), (action.x, action.y))


def test_history_screenshots_shrink_with_the_budget_and_history_images_limits_them():
    screen = Image.new("RGB", (1920, 1080), "white")
    history = [HistoryEntry(thought=f"t{i}", action_text="hover(start_box='[1,1]')", screenshot=screen.copy()) for i in range(6)]
    full = GLM45VDialect()
    small = GLM45VDialect(max_pixels=budget_pixels(1200), history_screenshots=2)
    obs = Observation(image=screen, timestamp=0.0)
    r_full, r_small = full.build_request("t", obs, history), small.build_request("t", obs, history)
    assert r_full.image_count() == 5 and r_small.image_count() == 3
    cur = r_small.messages[0].content[-1].image
    hist = [p.image for p in r_small.messages[0].content[:-1] if hasattr(p, "image")]
    assert all(abs(im.width - cur.width / 2) <= FACTOR for im in hist)  # 50% of what the current one is sent at
    assert full.image_tokens(r_full) == default_image_tokens(1920, 1080, 6) == 2693 + 4 * 648
    assert small.image_tokens(r_small) <= 1202 + 2 * (300 + 2)
    assert MIN_PIXELS // 784 == 8


def _steps(dialect, n, screen_size=(1280, 800)):
    """Requests of n consecutive steps, each remembering the previous one like the loop does."""
    history, requests = [], []
    for i in range(n):
        image = Image.new("RGB", screen_size, (i * 20 % 256, 40, 90))
        obs = Observation(image=image, timestamp=float(i))
        requests.append(dialect.build_request("Write a letter", obs, list(history), [{"step": i}]))
        history.append(HistoryEntry(thought=f"Step {i} thought.", action_text=f"hover(start_box='[{i},{i}]')", screenshot=image))
        for old in history[:-dialect.options.history_screenshots or None]:
            old.screenshot = None
    return requests


def test_reusable_prefix_is_measured_step_to_step():
    tracker = PrefixTracker()
    dialect = GLM45VDialect()
    shares = [tracker.measure(r) for r in _steps(dialect, 8)]
    first_shared, first_total = shares[0]
    assert first_shared == 0 and first_total > 1000
    head = dialect.build_request("Write a letter", Observation(image=Image.new("RGB", (1280, 800)), timestamp=0), []).messages[0].content[0].text
    head = head[: head.index("History:")]
    for shared, total in shares[1:]:
        assert text_tokens(head) <= shared < total
    # steps 2-5: the previous prompt's history images are still there, in the same place: they are reused
    assert shares[3][0] > text_tokens(head) + 2 * 300
    # from step 6 the oldest image leaves the 4-image window at the start of the history: reuse stops there
    assert shares[7][0] < shares[4][0]


def test_text_only_history_keeps_almost_everything_reusable():
    tracker = PrefixTracker()
    measured = [tracker.measure(r) for r in _steps(GLM45VDialect(history_screenshots=0), 10)]
    shared, total = measured[-1]
    image = image_tokens(1280, 800) + 2
    # everything up to the newest history step; the memory/output-format tail and the screenshot follow it
    assert (total - image) * 0.7 <= shared <= total - image
    assert [s for s, _ in measured[1:]] == sorted(s for s, _ in measured[1:])  # grows with the history


def test_the_real_processor_takes_a_budgeted_screenshot_as_it_is():
    """GLM-4.5V's own image processor (transformers) gets our budgeted image and changes nothing: same tokens."""
    from test_perception import _glm_processor

    processor = _glm_processor()
    for size in [(1920, 1080), (1001, 777)]:
        for budget in (300, 1200):
            sent = _seen(GLM45VDialect(max_pixels=budget_pixels(budget)), Image.new("RGB", size))
            patches = processor.get_number_of_image_patches(sent.height, sent.width, {})
            assert patches // 4 == image_tokens(sent.width, sent.height) <= budget
            if sent.size != size:  # resized by us: already the processor's size, no second resize
                assert patches == (sent.width // 14) * (sent.height // 14)


def test_a_run_records_tokens_savings_prefix_and_settle(tmp_path):
    """`deskpilot run --image-budget 600 --history-images 2` on xterm: what each step cost, and how it waited."""
    import json

    from typer.testing import CliRunner

    from deskpilot.cli import app
    from deskpilot.agent.records.trajectory import load_run

    def box(call):
        return f"Next.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"

    script = tmp_path / "replies.json"
    script.write_text(json.dumps([box("type(content='echo one')"), box("key(keys='enter')"),
                                  box("hover(start_box='[500,500]')"), box("type(content='echo two')"), box("DONE()")]))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "echo things", "--app", "xterm", "--script", str(script), "--size", "1280x800",
                                      "--out", str(out), "--quiet", "--image-budget", "600", "--history-images", "2"])
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.settings["loop"]["image_budget"] == "600" and run.settings["loop"]["history_images"] == 2
    steps = run.steps
    assert [s.request.images for s in steps] == [1, 2, 3, 3, 3]
    for s in steps:
        assert s.request.image_tokens <= 602 + (s.request.images - 1) * (150 + 2)
        assert s.request.image_tokens_default > s.request.image_tokens
        assert s.request.prompt_tokens_est > s.request.image_tokens
    assert steps[0].request.prefix_tokens_est == 0 and all(s.request.prefix_share > 0 for s in steps[1:])
    acted = [s for s in steps if s.settle]
    assert len(acted) == 4 and all(s.settle["method"] == "damage" for s in acted)
    assert acted[0].settle["changed"] and acted[0].settle["settled"]  # xterm echoes typed text at once
    assert not acted[2].settle["changed"]  # a hover over a terminal draws nothing
    totals = run.end.totals
    assert 0 < totals["image_token_savings_pct"] < 100 and 0 < totals["prefix_share"] < 1
    assert "reusable prefix" in (out / "report.html").read_text()


def test_history_copy_of_the_last_screenshot_is_shrunk_from_what_was_sent():
    """Same size as shrinking the original (cheaper: a 2x box reduce of the budgeted image)."""
    for size in [(1920, 1080), (1366, 768), (1001, 777)]:
        screen = Image.new("RGB", size, "white")
        fresh = GLM45VDialect(max_pixels=budget_pixels(1200))
        direct = [p.image for p in fresh.build_request("t", Observation(image=Image.new("RGB", size), timestamp=0),
                                                       [HistoryEntry(screenshot=screen.copy())]).messages[0].content
                  if hasattr(p, "image")][0]
        dialect = GLM45VDialect(max_pixels=budget_pixels(1200))
        dialect.build_request("t", Observation(image=screen, timestamp=0), [])
        request = dialect.build_request("t", Observation(image=Image.new("RGB", size), timestamp=1),
                                        [HistoryEntry(screenshot=screen)])
        derived = [p.image for p in request.messages[0].content if hasattr(p, "image")][0]
        assert abs(derived.width - direct.width) <= FACTOR and abs(derived.height - direct.height) <= FACTOR, size
        assert image_tokens(derived.width, derived.height) <= 300


def test_prepared_screenshot_is_what_the_prompt_sends():
    """prepare_image (run while the screen settles) gives the same image the prompt would fit itself."""
    from deskpilot.perception.resize import smart_resize

    screen = Image.new("RGB", (1920, 1080), "white")
    dialect = GLM45VDialect(max_pixels=budget_pixels(1200))
    dialect.prepare_image(screen)
    prepared = dialect._fitted[1]
    sent = [p.image for p in dialect.build_request("t", Observation(image=screen, timestamp=0), []).messages[0].content
            if hasattr(p, "image")][-1]
    assert sent is prepared and sent.size == smart_resize(1920, 1080, max_pixels=budget_pixels(1200))
    other = Image.new("RGB", (1920, 1080), "black")  # a frame that was not prepared is fitted on the spot
    sent = [p.image for p in dialect.build_request("t", Observation(image=other, timestamp=1), []).messages[0].content
            if hasattr(p, "image")][-1]
    assert sent is not prepared and sent.getpixel((0, 0)) == (0, 0, 0)


def test_a_run_sends_the_budgeted_copy_of_each_saved_screenshot(tmp_path):
    """With early frames and ahead-of-time fitting, what the model gets is still the saved screenshot, fitted."""
    import deskpilot
    from deskpilot.agent.dialects.glm45v_images import fit_budget
    from deskpilot.agent.loop.agent import LoopSettings

    def box(call):
        return f"Next.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"

    replies = [box("type(content='echo one')"), box("key(keys='enter')"), box("type(content='ls')"), box("DONE()")]
    backend = deskpilot.ScriptedBackend(replies)
    with deskpilot.Sandbox(size=(1280, 800), apps=["xterm"]) as desk:
        agent = deskpilot.Agent(backend, desk, run_dir=tmp_path / "run", settings=LoopSettings(image_budget="600"))
        assert agent.run("echo").ok
    for step, request in enumerate(backend.requests, start=1):
        sent = [p.image for p in request.messages[0].content if hasattr(p, "image")][-1]
        with Image.open(tmp_path / "run" / f"step_{step:03d}.png") as saved:
            expected = fit_budget(saved.convert("RGB"), budget_pixels(600))
            assert sent.size == expected.size and sent.tobytes() == expected.tobytes(), step
