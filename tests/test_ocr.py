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
