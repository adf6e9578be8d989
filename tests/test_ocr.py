"""OCR without a model, on the real demo form (Tk) in a real sandbox: find, click and wait for text."""

from __future__ import annotations

import json
import time

import pytest

from deskpilot.agent.desk.session import Session, SessionSpec

from deskpilot.demo import demo_app
from deskpilot.errors import CheckFailed
from deskpilot.perception import ocr


@pytest.fixture
def form(tmp_path):
    saved = tmp_path / "form.json"
    with Session(spec=SessionSpec(size=(1280, 800), shares=[str(tmp_path)], apps=[demo_app(saved)])) as desk:
        yield desk, saved


def test_find_click_and_wait_for_text(form):
    desk, saved = form
    assert ocr.engine() is ocr.engine()  # one engine per process
    lines = ocr.read_text(desk)
    assert [t.text for t in lines][:4] == ["Contact form", "Name", "Email", "Save"]
    title = ocr.match(lines, "contact  FORM")[0]  # case and spacing do not matter
    x, y = title.center
    assert abs(x - 640) < 30 and abs(y - 96) < 15  # the title sits at (0.5, 0.12) of the screen
    email = ocr.match(lines, "Email")[0]
    assert email.box[1] > title.box[3] and 0 < ocr.last_ms
    assert ocr.find_text(desk, "Save", region=(0, 0, 1280, 300)) == []  # Save is lower down
    clicked = ocr.click_text(desk, "Save")
    assert abs(clicked.center[1] - 464) < 15  # the Save button at (0.5, 0.58)
    assert ocr.wait_for_text(desk, "Saved.", timeout=10)[0].text == "Saved."
    assert json.loads(saved.read_text()) == {"name": "", "email": ""}
    started = time.monotonic()
    with pytest.raises(CheckFailed, match=r"text 'Deleted' did not appear within 0.5 s \(screen shows: Contact form; Name"):
        ocr.wait_for_text(desk, "Deleted", timeout=0.5)
    assert time.monotonic() - started < 30


def test_match_joins_neighbours_on_a_row_and_narrows_the_box():
    """Dense text comes out of the detector word by word: a phrase is still found, with its own box."""
    pieces = [ocr.TextBox(text="Line", box=(0, 0, 40, 20), score=0.9),
              ocr.TextBox(text="11: invoice", box=(44, 1, 154, 21), score=0.8),
              ocr.TextBox(text="Save", box=(400, 0, 440, 20), score=1.0),  # far away: not the same phrase
              ocr.TextBox(text="total", box=(0, 30, 50, 50), score=0.95)]  # next row
    found = ocr.match(pieces, "line 11:")
    assert [(t.text, t.box, t.score) for t in found] == [("Line 11:", (0, 0, 74, 21), 0.8)]
    assert [t.box for t in ocr.match(pieces, "invoice")] == [(84, 1, 154, 21)]
    assert ocr.match(pieces, "invoice Save") == [] and ocr.match(pieces, "invoice total") == []
    assert [t.text for t in ocr.match(pieces, "e")] == ["e", "e", "e"]  # every occurrence, not one per row


def test_the_ocr_models_do_not_spin_between_runs():
    """onnxruntime's worker threads spin after each run by default: that burnt the cores the desk's
    apps need, and most of the CPU of re-reading an unchanged screen."""
    engine = ocr.engine()
    for model in (engine._load_det_model(), engine._load_rec_model()):
        options = model.session.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
