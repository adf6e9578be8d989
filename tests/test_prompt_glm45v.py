"""GLM-4.5V prompt builder: structure, screenshots, memory, token cost, helpers."""

from __future__ import annotations

import pytest
from PIL import Image

from deskpilot.actions.parse import ParseError
from deskpilot.agent.dialects import GLM45VDialect, HistoryEntry, ParsedStep
from deskpilot.agent.dialects.base import Dialect
from deskpilot.model_backend.types import ImagePart, TextPart
from deskpilot.perception.observation import Observation
from deskpilot.perception.resize import smart_resize

B, E = "<|begin_of_box|>", "<|end_of_box|>"


def _obs(width=1920, height=1080, colour=(10, 20, 30)) -> Observation:
    return Observation(image=Image.new("RGB", (width, height), colour), timestamp=0.0)


def _history(n: int, size=(1920, 1080)) -> list[HistoryEntry]:
    return [
        HistoryEntry(
            thought=f"thought {i} {B}boxed{E}",
            action_text=f"{B}left_click(start_box='[{i},{i}]'){E}",
            screenshot=Image.new("RGB", size, (i, i, i)),
        )
        for i in range(1, n + 1)
    ]


def _text(request) -> str:
    return "".join(p.text if isinstance(p, TextPart) else "<IMG>" for p in request.messages[0].content)


def test_one_user_message_with_sections_in_order():
    request = GLM45VDialect().build_request("Open the settings", _obs(), _history(2), [{"k": "v"}])
    assert len(request.messages) == 1 and request.messages[0].role == "user"
    text = _text(request)
    headers = ["# Task:", "Open the settings", "# Task Platform", "Ubuntu", "# Action Space", "_click(start_box=",
               "left_drag(", "scroll(", "WAIT()", "DONE(answer=", "FAIL()", "# Historical Actions and Current Memory",
               "step 1:", "step 2:", "Memory:", "# Output Format", "# Some Additional Notes", "Current Screenshot:"]
    positions = [text.index(h) for h in headers]
    assert positions == sorted(positions)
    assert "0-999" in text and "thousandths" in text


def test_last_four_screenshots_inline_at_half_size_older_omitted():
    request = GLM45VDialect().build_request("t", _obs(), _history(6), None)
    parts = request.messages[0].content
    images = [p for p in parts if isinstance(p, ImagePart)]
    assert len(images) == 5
    assert [im.image.size for im in images[:4]] == [(960, 540)] * 4
    assert [im.image.getpixel((0, 0)) for im in images[:4]] == [(i, i, i) for i in (3, 4, 5, 6)]
    text = _text(request)
    for step in (1, 2):
        assert f"step {step}: Screenshot:(Omitted in context.) Thought: thought {step}" in text
    for step in (3, 4, 5, 6):
        assert f"step {step}: Screenshot:<IMG> Thought: thought {step}" in text


def test_box_tokens_stripped_from_history():
    text = _text(GLM45VDialect().build_request("t", _obs(), _history(3), None))
    history = text[text.index("History:") : text.index("# Output Format")]
    assert B not in history and E not in history
    assert "Action: left_click(start_box='[2,2]')" in history
    assert "thought 2 boxed" in history


def test_memory_carried_as_json():
    text = _text(GLM45VDialect().build_request("t", _obs(), [], [{"name": "Zoë"}]))
    assert 'Memory:\n[{"name": "Zoë"}]' in text
    assert "Memory:\n[]" in _text(GLM45VDialect().build_request("t", _obs(), [], None))


def test_current_screenshot_last_and_full_size():
    obs = _obs(colour=(200, 100, 50))
    request = GLM45VDialect().build_request("t", obs, _history(5), None)
    last = request.messages[0].content[-1]
    assert isinstance(last, ImagePart)
    assert last.image.size == (1920, 1080)
    assert last.image.getpixel((5, 5)) == (200, 100, 50)
    assert _text(request).rstrip().endswith("Current Screenshot:\n<IMG>".rstrip())


def test_current_screenshot_resized_only_beyond_budget():
    budget = 1288 * 728
    dialect = GLM45VDialect(max_pixels=budget)
    small = dialect.build_request("t", _obs(1280, 720), [], None).messages[0].content[-1]
    assert small.image.size == (1280, 720)
    big = dialect.build_request("t", _obs(3840, 2160), [], None).messages[0].content[-1]
    assert big.image.size == smart_resize(3840, 2160, max_pixels=budget)
    assert big.image.width * big.image.height <= budget
    assert big.image.width % 28 == 0 and big.image.height % 28 == 0


def test_image_tokens_follow_the_resize_rule():
    dialect = GLM45VDialect()
    request = dialect.build_request("t", _obs(), _history(6), None)
    # 1920x1080 -> 1932x1092 = 69x39 tokens; 960x540 -> 952x532 = 34x19; +2 markers each.
    assert dialect.image_tokens(request) == (69 * 39 + 2) + 4 * (34 * 19 + 2)
    assert dialect.image_tokens(dialect.build_request("t", _obs(2560, 1440), [], None)) == 4641 + 2
    assert dialect.image_tokens(dialect.build_request("t", _obs(1280, 720), [], None)) == 1196 + 2


def test_history_options_are_honoured():
    dialect = GLM45VDialect(history_screenshots=2, history_scale=0.25, image_format="jpeg")
    request = dialect.build_request("t", _obs(), _history(4), None)
    images = [p for p in request.messages[0].content if isinstance(p, ImagePart)]
    assert [im.image.size for im in images] == [(480, 270), (480, 270), (1920, 1080)]
    assert {im.format for im in images} == {"jpeg"}
    assert "2 most recent" in _text(request) and "25%" in _text(request)


def test_thinking_flag_and_platform():
    dialect = GLM45VDialect(platform="Debian 12")
    assert dialect.build_request("t", _obs(), [], None, thinking=False).thinking is False
    request = dialect.build_request("t", _obs(), [], None)
    assert request.thinking is True and "Debian 12" in _text(request)


def test_secrets_shown_to_model_and_redacted_for_logs():
    dialect = GLM45VDialect(secrets={"sudo password": "s3cr3t!", "mail password": "p@ss"}, extra_instructions="Be careful.")
    text = _text(dialect.build_request("t", _obs(), [], None))
    assert "s3cr3t!" in text and "p@ss" in text and "Be careful." in text
    assert dialect.redact("typed s3cr3t! then p@ss") == "typed ***sudo password*** then ***mail password***"
    assert GLM45VDialect().redact("nothing") == "nothing"


def test_bad_options_rejected():
    with pytest.raises(ValueError):
        GLM45VDialect(history_scale=0)
    with pytest.raises(ValueError):
        GLM45VDialect(image_format="gif")


def test_parse_through_dialect():
    step = GLM45VDialect().parse(f"Ok.\n{B}left_click(start_box='[250,500]'){E}\nMemory:\n[]", None, 1280, 800)
    assert isinstance(step, ParsedStep)
    assert step.action.points() == [(320, 400)]


def test_retry_is_one_user_turn_with_the_failed_attempt_in_history():
    dialect = GLM45VDialect()
    failed = dialect.failed_attempt(f"I will click. {B}left_click(start_box='[1200,5]'){E}\nMemory:\n[]",
                                    "the start_box must be [x,y] with numbers from 0 to 999")
    retry = dialect.build_request("t", _obs(), [*_history(1), failed], None, thinking=False)
    assert [m.role for m in retry.messages] == ["user"]
    text = _text(retry)
    assert B not in text and E not in text
    last = text[text.index("step 2:") : text.index("# Output Format")]
    assert "Screenshot:(Omitted in context.) Thought: I will click. left_click(start_box='[1200,5]')" in last
    assert "could not be performed: the start_box must be [x,y] with numbers from 0 to 999" in last
    assert retry.thinking is False


def test_locate_request_and_parse_box():
    dialect = GLM45VDialect()
    request = dialect.build_locate_request(_obs(), "the Save button")
    assert request.thinking is False
    parts = request.messages[0].content
    assert isinstance(parts[0], ImagePart) and "the Save button" in parts[1].text
    assert dialect.parse_box(f"{B}[100,200,300,400]{E}", 1920, 1080) == (192, 216, 576, 432)
    assert dialect.parse_box(f"{B}[[300,400,100,200]]{E}", 1000, 1000) == (100, 200, 300, 400)
    assert dialect.parse_box("<think>hmm [5,5]</think>It is at <point>500 500</point>", 1000, 1000) == (500, 500, 500, 500)
    assert dialect.parse_box(f"{B}100,200,300,400{E}", 1000, 1000) == (100, 200, 300, 400)
    for bad in ("no idea", f"{B}[1,2,3]{E}", "[abc]"):
        with pytest.raises(ParseError):
            dialect.parse_box(bad, 1000, 1000)
    with pytest.raises(ParseError, match="0 to 999"):
        dialect.parse_box(f"{B}[100,200,1300,400]{E}", 1000, 1000)


def test_ask_request_and_answer_text():
    dialect = GLM45VDialect()
    request = dialect.build_ask_request(_obs(), "What is the title?", thinking=True)
    assert request.thinking is True and "What is the title?" in request.messages[0].content[1].text
    assert dialect.answer_text(f"<think>look at the bar</think>{B}Untitled - Editor{E}") == "Untitled - Editor"
    assert dialect.answer_text("  plain answer ") == "plain answer"


def test_dialect_has_every_protocol_member():
    members = [m for m in dir(Dialect) if not m.startswith("_")]
    dialect = GLM45VDialect()
    for member in members:
        assert hasattr(dialect, member), member
    assert dialect.name == "glm-4.5v"


def test_reused_dialect_shrinks_each_new_screenshot():
    dialect = GLM45VDialect()
    first = _history(5)
    dialect.build_request("t", _obs(), first, None)
    later = first[1:] + [HistoryEntry(thought="new", action_text="WAIT()", screenshot=Image.new("RGB", (1920, 1080), (99, 0, 0)))]
    images = [p for p in dialect.build_request("t", _obs(), later, None).messages[0].content if isinstance(p, ImagePart)]
    assert [im.image.getpixel((0, 0)) for im in images[:4]] == [(3, 3, 3), (4, 4, 4), (5, 5, 5), (99, 0, 0)]
