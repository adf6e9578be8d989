"""Text waits wake on screen changes, not on a timer (real Xvfb, real Tk app, real OCR).

The Tk app shows "Report ready" 1.5 s after a key press and draws nothing
before or after it (no caret, no animation), so the screen is still except
for that one change.
"""

from __future__ import annotations

import time

import pytest

from deskpilot.actions.models import Key
from deskpilot.agent.desk.session import AppSpec, Session, SessionSpec
from deskpilot.errors import CheckFailed
from deskpilot.perception import ocr

from apps import APPS_DIR, EventLog, system_python


@pytest.fixture
def board():
    app = AppSpec(argv=[system_python(), str(APPS_DIR / "late_text.py"), "--delay-ms", "1500"],
                  binds=[{"host": str(APPS_DIR), "writable": False}])
    with Session(spec=SessionSpec(size=(800, 600), apps=[app], accessibility=False)) as desk:
        log = EventLog(desk.apps[0].stdout_path)
        log.wait_for(lambda e: e["ev"] == "ready", timeout=20)
        ocr.wait_for_text(desk, "Status board", timeout=20)  # the engine loaded, the first frame read
        yield desk, log


def test_late_text_is_found_soon_after_it_is_drawn(board):
    desk, log = board
    desk.perform(Key.model_validate({"keys": "space"}), settle=False)
    armed = log.wait_for(lambda e: e["ev"] == "armed", timeout=10)
    found = ocr.wait_for_text(desk, "Report ready", timeout=30)
    seen_at = time.monotonic()
    shown = log.wait_for(lambda e: e["ev"] == "shown", timeout=5)
    assert found[0].text == "Report ready" and found[0].via == "ocr"
    assert shown["t"] - armed["t"] >= 1.4, "the text really came late"
    assert seen_at - shown["t"] < 5, f"found {seen_at - shown['t']:.2f} s after it was drawn"
    stats = ocr.last_wait
    assert stats is not None and stats.method == "damage"
    assert 1 <= stats.wakes <= 3 and stats.reads == stats.wakes + 1, stats  # a read per change, none per tick


def test_a_still_screen_is_read_once_per_wait(board):
    desk, _ = board
    before = ocr.reads
    started = time.monotonic()
    with pytest.raises(CheckFailed) as failed:
        ocr.wait_for_text(desk, "Report ready", timeout=2)
    assert time.monotonic() - started >= 2
    assert ocr.reads - before == 1, f"{ocr.reads - before} OCR reads of a screen that never changed"
    assert ocr.last_wait is not None and ocr.last_wait.wakes == 0 and ocr.last_wait.reads == 1
    message = str(failed.value)  # what was read is named, and the frame is kept as evidence
    assert "did not appear within 2 s" in message and "Status board" in message and "Waiting for the report" in message
    assert failed.value.screen is not None


def test_frames_fallback_reads_a_still_image_once():
    """A source without a display (a frame) is compared, not read again: one OCR read in the whole wait."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 120), "white")
    ImageDraw.Draw(image).text((20, 40), "Nothing else here", fill="black", font_size=28)
    before = ocr.reads
    with pytest.raises(CheckFailed, match=r"Nothing else here"):
        ocr.wait_for_text(image, "Report ready", timeout=0.6, interval=0.05)
    assert ocr.reads - before == 1 and ocr.last_wait is not None and ocr.last_wait.method == "frames"


def test_a_workflow_wait_for_text_step_reads_a_still_screen_once(tmp_path):
    """The workflow step goes through the same wait: one OCR read in 2 s, and its failure names what it read."""
    from deskpilot.workflow import parse_workflow, run_workflow

    app = f"{system_python()} {APPS_DIR / 'late_text.py'}"
    text = ("desktop: {size: 800x600, apps: ['" + app + "']}\n"
            "steps:\n"
            "  - wait_for_text: Status board\n    timeout: 30\n"
            "  - wait_for_text: Report ready\n    timeout: 2\n")
    result = run_workflow(parse_workflow(text, "waits.yaml", base_dir=tmp_path), tmp_path / "run", base_dir=tmp_path)
    assert [s.status for s in result.steps] == ["passed", "failed"], [s.message for s in result.steps]
    assert "did not appear within 2 s" in result.steps[1].message and "Status board" in result.steps[1].message
    stats = ocr.last_wait  # the failed step's wait
    assert stats is not None and stats.method == "damage" and stats.reads == 1 and stats.wakes == 0, stats
    assert stats.seconds >= 2


def test_where_the_tree_answers_it_answers_first_and_waits_wake_on_the_drawing():
    """GTK form (publishes a tree): text in the tree costs no OCR; a button shown 1.5 s late is found in the tree."""
    app = AppSpec(argv=[system_python(), str(APPS_DIR / "gtk_form.py"), "--delay", "1.5"],
                  binds=[{"host": str(APPS_DIR), "writable": False}])
    with Session(spec=SessionSpec(size=(800, 600), apps=[app])) as desk:
        desk.get_by_role("window", name="Form").wait_for(timeout=20)  # registered on the bus
        before = ocr.reads
        assert ocr.wait_for_text(desk, "Subscribe", timeout=20)[0].via == "a11y"
        assert ocr.reads == before, "the tree held the text: no OCR read"
        desk.get_by_role("checkbox", name="Subscribe").click(timeout=20)
        found = ocr.wait_for_text(desk, "Late", timeout=30)
        stats = ocr.last_wait
        assert found[0].via == "a11y" and stats is not None and stats.method == "damage", (found, stats)
        assert stats.wakes >= 1 and stats.reads == stats.wakes, stats  # OCR only for looks the tree did not settle


def test_a_blinking_caret_wakes_the_wait_but_its_frames_are_not_detected_again():
    """A focused Tk entry blinks (600 ms on, 300 off): each blink is a change, but the two frames alternate."""
    app = AppSpec(argv=[system_python(), str(APPS_DIR / "settle_app.py")],
                  binds=[{"host": str(APPS_DIR), "writable": False}])
    with Session(spec=SessionSpec(size=(800, 600), apps=[app], accessibility=False)) as desk:
        EventLog(desk.apps[0].stdout_path).wait_for(lambda e: e["ev"] == "ready", timeout=20)
        ocr.wait_for_text(desk, "settle-app", timeout=30)  # the engine loaded (its first read alone may take 4 s)
        with pytest.raises(CheckFailed, match="settle-app"):  # the title bar is read
            ocr.wait_for_text(desk, "never on this screen", timeout=8)
    stats = ocr.last_wait  # a detection costs seconds under load, a known frame milliseconds: 8 s hold many blinks
    assert stats is not None and stats.reads == stats.wakes + 1 and stats.reads >= 4, stats
    assert stats.full_reads <= 2, f"{stats.full_reads} detections for a caret's two frames"
