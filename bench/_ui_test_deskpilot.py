"""Way (a) of bench/ui_test_speed.py: the small mousepad test as a deskpilot pytest test, no model.

Not part of the test suite (it lives in bench/ and is not named test_*); the bench runs it with
``pytest bench/_ui_test_deskpilot.py`` in a process of its own and reads the figures it writes.
"""

from __future__ import annotations

import pytest

from deskpilot import expect
from ui_test_speed import LINES, Timer, check_file


@pytest.mark.desktop(size=(1280, 800), apps=["mousepad {share}/notes.txt"])
@pytest.mark.parametrize("by", ["elements", "text"])
def test_shopping_list(pilot, desktop, desktop_share, by):
    """``elements``: the text area's text through its locator; ``text``: ``pilot.expect_text`` (the tree
    first; a multi-line document is left to OCR, so A3 and A4 are OCR reads)."""
    from deskpilot.perception import ocr

    notes = desktop_share / "notes.txt"
    if by == "text":
        ocr.engine()._load_rec_model()  # loaded before the clock starts, as the peers' engine is
    timer = Timer()
    reads = ocr.reads
    timer.start()
    area = desktop.get_by_role("textbox")

    def shows(text):
        if by == "text":
            return lambda: pilot.expect_text(text, timeout=30)
        return lambda: expect(area).to_contain_text(text)

    timer.assertion(lambda: pilot.expect_text("File"))  # a text wait: the tree answers (via a11y), no OCR
    area.click()
    desktop.type(LINES[0])
    timer.assertion(shows(LINES[0]))
    desktop.key("enter")
    desktop.type(LINES[1])
    timer.assertion(shows(LINES[1]))
    desktop.key("enter")
    desktop.type(LINES[2])
    desktop.key("enter")
    desktop.type(LINES[3])
    timer.assertion(shows(LINES[3]))
    desktop.key("ctrl+home")
    desktop.key("ctrl+s")
    timer.assertion(lambda: expect(desktop.get_by_role("frame")).to_have_text(f"{notes} - Mousepad"))
    check_file(notes)
    timer.stop()
    timer.notes["ocr_reads"] = ocr.reads - reads
    timer.save()
