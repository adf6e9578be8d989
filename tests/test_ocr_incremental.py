"""Incremental OCR: an unchanged frame is not read again, after a change only new lines are recognised,
and the lines equal a read from scratch of the same frame (real apps in real sandboxes)."""

from __future__ import annotations

import pytest

from deskpilot.agent.desk.session import Session, SessionSpec
from deskpilot.demo import demo_app
from deskpilot.perception import ocr


@pytest.fixture
def form(tmp_path):
    with Session(spec=SessionSpec(size=(1280, 800), shares=[str(tmp_path)],
                                  apps=[demo_app(tmp_path / "form.json")])) as desk:
        yield desk


def _texts(lines):
    return [t.text for t in lines]


def test_incremental_reads_equal_full_reads_over_a_session(form):
    desk = form
    frames = [desk.screenshot()]
    name = ocr.match(ocr.read_text(desk, fresh=True), "Name")[0]
    desk.click(name.box[2] + 200, name.center[1])
    desk.type("Ada Lovelace")
    frames.append(desk.screenshot())
    desk.type(" Byron")
    frames.append(desk.screenshot())
    ocr.click_text(desk, "Save")
    ocr.wait_for_text(desk, "Saved.", timeout=20)
    frames.append(desk.screenshot())

    full = [ocr.read_text(frame, fresh=True) for frame in frames]
    assert ocr.last_kind == "full"
    assert any("Ada Lovelace Byron" in t for t in _texts(full[2])) and "Saved." in _texts(full[3])

    ocr.read_text(frames[0], fresh=True)
    again = ocr.read_text(frames[0])
    assert ocr.last_kind == "same" and _texts(again) == _texts(full[0])
    assert ocr.last_ms < 1000
    for frame, expected in zip(frames[1:], full[1:]):
        got = ocr.read_text(frame)
        assert ocr.last_kind == "full" and 0 < ocr.last_recognised < len(got), "unchanged lines come from the cache"
        assert sorted(_texts(got)) == sorted(_texts(expected))  # order may swap lines a pixel apart
        for a in got:
            b = next(t for t in expected if t.text == a.text)
            assert max(abs(p - q) for p, q in zip(a.box, b.box)) <= 4, (a, b)


def test_incremental_reads_equal_full_reads_in_a_terminal(tmp_path):
    """Dense text: 24 lines whose detector boxes overlap their neighbours', then a command and its output."""
    from deskpilot.agent.desk.session import AppSpec

    listing = tmp_path / "lines.txt"
    listing.write_text("".join(f"Line {n:02d}: invoice {1000 + n * 37} total {n * 12.5:.2f} EUR\n"
                               for n in range(1, 25)), encoding="utf-8")
    argv = ["xterm", "-maximized", "-fa", "DejaVu Sans Mono", "-fs", "12", "-e", "/bin/sh", "-c",
            f'cat "{listing}"; exec /bin/sh']
    with Session(spec=SessionSpec(size=(1920, 1080), shares=[str(tmp_path)], apps=[AppSpec(argv=argv)])) as desk:
        ocr.wait_for_text(desk, "Line 24", timeout=30)
        frames = [desk.screenshot()]
        desk.type("echo done")
        frames.append(desk.screenshot())
        desk.key("Return")
        ocr.wait_for_text(desk, "$ echo done", timeout=20)
        desk.settle(3)
        frames.append(desk.screenshot())
    full = [ocr.read_text(frame, fresh=True) for frame in frames]
    ocr.read_text(frames[0], fresh=True)
    for frame, expected in zip(frames[1:], full[1:]):
        got = ocr.read_text(frame)
        assert ocr.last_kind == "full" and 0 < ocr.last_recognised <= len(got) // 3
        assert sorted(_texts(got)) == sorted(_texts(expected)), ([(t.text, t.box) for t in got if t.box[1] > 440],
                                                                 [(t.text, t.box) for t in expected if t.box[1] > 440])
    assert "$ echo done" in _texts(full[1]) and "done" in _texts(full[2])
