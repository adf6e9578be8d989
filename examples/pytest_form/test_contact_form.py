"""UI tests of the bundled contact form, written with deskpilot's pytest plugin.

Run with recorded replies (no model needed):

    pytest examples/pytest_form --deskpilot-script examples/pytest_form/replies

or against a model server: --deskpilot-base-url http://127.0.0.1:8000/v1.
FORM_LAYOUT=changed starts the form with its fields moved (what a UI change
looks like to a test that was written for the old layout).
"""

import json
import os

import pytest

from deskpilot.demo import DEMO_APP, DEMO_TASK

FORM = f"/usr/bin/python3 {DEMO_APP} --save-to {{share}}/form.json --layout {os.environ.get('FORM_LAYOUT', 'standard')}"


@pytest.mark.desktop(size=(1280, 800), apps=[FORM])
def test_fill_and_save(pilot, desktop_share):
    pilot.do(DEMO_TASK, checks=[{"file": str(desktop_share / "form.json"), "json": {"path": "name", "equals": "Ada Lovelace"}},
                                {"text_visible": "Saved."}])
    pilot.expect("the form says it was saved")
    x1, y1, x2, y2 = pilot.locate("the Save button")
    assert x1 < 640 < x2 and y1 < 464 < y2  # the button sits at (0.5, 0.58) of the screen
    assert json.loads((desktop_share / "form.json").read_text())["email"] == "ada@example.org"


@pytest.mark.desktop(size=(1280, 800), apps=[FORM])
def test_save_without_a_model(pilot, desktop_share):
    pilot.expect_text("Contact form")
    pilot.click_text("Save")
    pilot.expect_text("Saved.")
    assert json.loads((desktop_share / "form.json").read_text()) == {"name": "", "email": ""}
