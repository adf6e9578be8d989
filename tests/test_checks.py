"""Checks: the one syntax, file checks on files written by real libraries, the screenshot diff,
and screen checks on a real GTK app (mousepad) in a real sandbox."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from deskpilot.agent.checks import (CheckContext, compare, expect_file_flag, parse_check, parse_checks,
                                    run_checks)
from deskpilot.errors import ConfigError

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


# -- syntax ------------------------------------------------------------------------------------
@pytest.mark.parametrize("obj, words", [
    ({"file": "a"}, "needs exactly one of exists"),
    ({"file": "a", "contains": "x", "regex": "y"}, "got contains and regex"),
    ({"text_visible": "x", "bogus": 1}, "bogus: unknown key"),
    ({"file": "a", "regex": "("}, "not a valid regular expression"),
    ({"text_visible": "a", "region": [5, 5, 1, 1]}, "x1 < x2"),
    ({"file": "t.xlsx", "xlsx_cell": {"cell": "14B", "equals": 1}}, "written like B14"),
    ({"file": "t.xlsx", "xlsx_cell": {"cell": "B1"}}, "needs equals: VALUE or formula"),
    ({"screenshot_matches": "b.png", "tolerance": 2}, "tolerance"),
    ({"nothing": 1}, "needs exactly one of file, text_visible"),
    ("Saved", "a check is an object"),
])
def test_bad_checks_get_one_line_errors(obj, words):
    with pytest.raises(ConfigError) as err:
        parse_check(obj)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_checks_round_trip_and_cli_shorthand():
    objs = [{"file": "out.csv", "exists": True}, {"file": "n.txt", "contains": "Total"},
            {"file": "d.json", "json": {"path": "a.b[0]", "equals": 3}},
            {"file": "t.csv", "csv_cell": {"row": 2, "col": "Total", "equals": 42}},
            {"file": "t.xlsx", "xlsx_cell": {"sheet": "S", "cell": "B14", "equals": 1}},
            {"file": "t.xlsx", "xlsx_cell": {"cell": "C10", "formula": "=SUM(C2:C9)"}},
            {"file": "t.xlsx", "xlsx_cell": {"cell": "C10", "equals": None, "formula": "=SUM(C2:C9)"}},
            {"file": "r.pdf", "pdf_contains": "Invoice"}, {"text_visible": "Saved", "region": [0, 0, 9, 9]},
            {"text_absent": "Error"}, {"window_title": "Mousepad", "focused": True},
            {"screenshot_matches": "b.png", "masks": [[0, 0, 5, 5]]}, {"expect": "the file was saved"}]
    checks = parse_checks(objs)
    assert [c.spec() for c in checks] == objs
    assert expect_file_flag("out/a b.txt:contains:x:y").spec() == {"file": "out/a b.txt", "contains": "x:y"}
    assert expect_file_flag("r.csv:exists").spec() == {"file": "r.csv", "exists": True}
    with pytest.raises(ConfigError, match="PATH:contains:TEXT"):
        expect_file_flag("r.csv")


# -- files -------------------------------------------------------------------------------------
def tiny_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, written out by hand (no PDF writer needed)."""
    stream = f"BT /F1 18 Tf 20 40 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 100] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


@pytest.fixture
def files(tmp_path) -> Path:
    import openpyxl
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    (tmp_path / "notes.txt").write_text("Quarterly report\nTotal: 1234\n", encoding="utf-8")
    (tmp_path / "data.json").write_text(json.dumps({"order": {"items": [{"sku": "A1", "qty": 3}]}}))
    with open(tmp_path / "table.csv", "w", newline="") as f:
        csv.writer(f).writerows([["Item", "Total"], ["apples", "42"], ["pears", "7.50"]])
    book = openpyxl.Workbook()
    book.active.title = "Summary"
    book.active["B14"] = 99.5
    book.create_sheet("Other")["A1"] = "hello"
    book.save(tmp_path / "book.xlsx")
    doc = OpenDocumentSpreadsheet()
    table = Table(name="Sales")
    for values in (["Region", "Amount"], ["North", 120]):
        row = TableRow()
        for v in values:
            cell = TableCell(valuetype="float", value=v) if isinstance(v, int) else TableCell(valuetype="string")
            cell.addElement(P(text=str(v)))
            row.addElement(cell)
        table.addElement(row)
    doc.spreadsheet.addElement(table)
    doc.save(str(tmp_path / "sheet.ods"))
    (tmp_path / "invoice.pdf").write_bytes(tiny_pdf("Invoice 2026-042 paid"))
    return tmp_path


FILE_CASES = [
    ({"file": "notes.txt", "exists": True}, True), ({"file": "missing.txt", "exists": True}, False),
    ({"file": "missing.txt", "exists": False}, True),
    ({"file": "notes.txt", "contains": "Total: 1234"}, True), ({"file": "notes.txt", "contains": "Total: 99"}, False),
    ({"file": "notes.txt", "regex": r"^Total: \d{4}$"}, True), ({"file": "notes.txt", "regex": r"^Sum"}, False),
    ({"file": "data.json", "json": {"path": "order.items[0].qty", "equals": 3}}, True),
    ({"file": "data.json", "json": {"path": "order.items[0].sku", "equals": "B2"}}, False),
    ({"file": "data.json", "json": {"path": "order.items[5]", "equals": 1}}, False),
    ({"file": "table.csv", "csv_cell": {"row": 2, "col": "Total", "equals": 42}}, True),
    ({"file": "table.csv", "csv_cell": {"row": 3, "col": 2, "equals": 7.5}}, True),
    ({"file": "table.csv", "csv_cell": {"row": 3, "col": 2, "equals": 8}}, False),
    ({"file": "table.csv", "csv_cell": {"row": 9, "col": 1, "equals": "x"}}, False),
    ({"file": "book.xlsx", "xlsx_cell": {"cell": "B14", "equals": 99.5}}, True),
    ({"file": "book.xlsx", "xlsx_cell": {"sheet": "Other", "cell": "A1", "equals": "hello"}}, True),
    ({"file": "book.xlsx", "xlsx_cell": {"sheet": "Other", "cell": "A1", "equals": "bye"}}, False),
    ({"file": "book.xlsx", "xlsx_cell": {"sheet": "Nope", "cell": "A1", "equals": 1}}, False),
    ({"file": "sheet.ods", "xlsx_cell": {"cell": "B2", "equals": 120}}, True),
    ({"file": "sheet.ods", "xlsx_cell": {"sheet": "Sales", "cell": "A2", "equals": "North"}}, True),
    ({"file": "sheet.ods", "xlsx_cell": {"cell": "B2", "equals": 121}}, False),
    ({"file": "invoice.pdf", "pdf_contains": "Invoice 2026-042"}, True),
    ({"file": "invoice.pdf", "pdf_contains": "unpaid"}, False),
    ({"file": "notes.txt", "pdf_contains": "x"}, False),  # not a PDF: a failed check, not a crash
]


def test_file_checks_pass_and_fail(files):
    results = run_checks([c for c, _ in FILE_CASES], CheckContext(base_dir=files))
    got = [(r.check, r.passed) for r in results]
    assert got == [(c, want) for c, want in FILE_CASES], [r.line() for r in results]
    by_label = {r.label: r for r in results}
    assert 'is "A1", expected "B2"' in by_label["file data.json has order.items[0].sku == 'B2'"].message
    assert results[9].message == "$.order.items has no [5]"
    assert results[13].evidence["rows"] == 3 and "no cell at row 9" in results[13].message
    assert "sheets: ['Summary', 'Other']" in results[17].message
    assert results[20].evidence["actual"] == 121 - 1


# -- the screenshot diff ------------------------------------------------------------------------
def text_image(words: str, size=(1280, 800)) -> Image.Image:
    img = Image.new("RGB", size, (240, 240, 240))
    ImageDraw.Draw(img).text((400, 300), words, fill=(20, 20, 20), font=ImageFont.truetype(FONT, 14))
    return img


def test_diff_catches_a_changed_word_that_a_global_score_misses():
    a, b = text_image("Saved to report.csv"), text_image("Saved to report.tsv")
    diff, mask = compare(a, b)
    assert 0 < diff.share < 0.0005  # 99.95 % of the pixels agree...
    assert diff.largest > 10 and len(diff.regions) == 1  # ...but one clustered change: a failure
    x1, y1, x2, y2 = diff.regions[0].box
    assert 460 <= x1 and x2 <= 560 and 290 <= y1 and y2 <= 330
    same, _ = compare(a, a.copy())
    assert same.changed == 0 and same.regions == []
    masked, _ = compare(a, b, masks=[diff.regions[0].box])
    assert masked.changed == 0
    assert compare(a, a.resize((640, 400)))[0].size_mismatch


def _full_frame_diff(a: Image.Image, b: Image.Image, threshold: float, masks) -> tuple[np.ndarray, list]:
    """The diff's definition computed over every pixel and grid cell, the slow way (a reference)."""
    pa, pb = (np.asarray(x, dtype=np.float64) for x in (a, b))
    ya, yb = (p @ [0.29889531, 0.58662247, 0.11448223] for p in (pa, pb))
    ia, ib = (p @ [0.59597799, -0.27417610, -0.32180189] for p in (pa, pb))
    qa, qb = (p @ [0.21147017, -0.52261711, 0.31114694] for p in (pa, pb))
    mask = 0.5053 * (ya - yb) ** 2 + 0.299 * (ia - ib) ** 2 + 0.1957 * (qa - qb) ** 2 > 35215.0 * threshold ** 2
    for x1, y1, x2, y2 in masks:
        mask[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = False
    h, w = mask.shape
    cells = {(y // 8, x // 8): 0 for y, x in zip(*np.nonzero(mask))}
    for y, x in zip(*np.nonzero(mask)):
        cells[y // 8, x // 8] += 1
    regions, left = [], set(cells)
    while left:
        todo, group = [left.pop()], []
        while todo:
            cy, cx = todo.pop()
            group.append((cy, cx))
            for n in [(cy + dy, cx + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]:
                if n in left:
                    left.remove(n)
                    todo.append(n)
        ys, xs = [c[0] for c in group], [c[1] for c in group]
        regions.append((sum(cells[c] for c in group), (min(xs) * 8, min(ys) * 8, min(w, max(xs) * 8 + 8),
                                                      min(h, max(ys) * 8 + 8))))
    return mask, sorted(regions, key=lambda r: (-r[0], r[1]))


def test_diff_of_the_changed_box_equals_the_full_frame_definition():
    """compare() works only on the box where pixels differ; its masks and regions are those of every pixel."""
    import random

    rng = random.Random(7)
    for _ in range(40):
        w, h = rng.choice([(1280, 800), (333, 217), (61, 45)])
        a = Image.new("RGB", (w, h), (240, 240, 240))
        for _ in range(4):
            x1, x2 = sorted(rng.randrange(w) for _ in "ab")
            y1, y2 = sorted(rng.randrange(h) for _ in "ab")
            ImageDraw.Draw(a).rectangle((x1, y1, x2, y2), fill=tuple(rng.randrange(256) for _ in "rgb"))
        b = a.copy()
        for _ in range(rng.randrange(4)):  # small changes anywhere, some touching, some faint
            x, y = rng.randrange(w), rng.randrange(h)
            ImageDraw.Draw(b).rectangle((x, y, x + rng.randrange(30), y + rng.randrange(20)),
                                        fill=tuple(rng.randrange(256) for _ in "rgb"))
        masks = [(rng.randrange(w), rng.randrange(h), rng.randrange(w), rng.randrange(h))] if rng.random() < 0.4 else []
        threshold = rng.choice([0.05, 0.1, 0.3])
        diff, mask = compare(a, b, threshold=threshold, masks=masks)
        want_mask, want_regions = _full_frame_diff(a, b, threshold, masks)
        assert (mask == want_mask).all()
        assert diff.changed == int(want_mask.sum())
        assert sorted(((r.pixels, r.box) for r in diff.regions), key=lambda r: (-r[0], r[1])) == want_regions


def test_a_small_change_is_answered_without_more_frames():
    """compare_live(small=N) does not grab (nor wait 0.7 s) when the largest change is at most N pixels:
    more frames only clear pixels. A larger change still takes the frames that rule out a caret."""
    from deskpilot.agent.desk.diff import compare_live
    from deskpilot.perception.observation import Observation

    a = text_image("Counter: 1")
    dot = a.copy()
    dot.putpixel((10, 10), (0, 0, 0))
    grabs: list[int] = []

    def grab(image):
        return lambda: grabs.append(1) or Observation(image=image, timestamp=0.0, display=":0")

    diff, _ = compare_live(a, dot, grab(dot), small=10, gap=0.0)
    assert diff.largest == 1 and grabs == []
    changed = text_image("Counter: 2")
    diff, _ = compare_live(a, changed, grab(changed), small=10, gap=0.05, window=0.2)
    assert diff.largest > 10 and len(grabs) >= 2


def test_a_change_that_shrinks_to_small_stops_taking_frames():
    """compare_live(small=N) stops sampling once what persists is at most N pixels (it can only shrink)."""
    from PIL import ImageDraw

    from deskpilot.agent.desk.diff import compare_live
    from deskpilot.perception.observation import Observation

    a = text_image("Counter: 1")
    big, tiny = a.copy(), a.copy()
    ImageDraw.Draw(big).rectangle((100, 100, 119, 119), fill=(0, 0, 0))
    ImageDraw.Draw(tiny).rectangle((100, 100, 101, 101), fill=(0, 0, 0))
    grabs: list[int] = []

    def grab():
        grabs.append(1)
        return Observation(image=tiny, timestamp=0.0, display=":0")

    diff, _ = compare_live(a, big, grab, small=10, gap=0.01, window=5.0)
    assert diff.largest <= 10 and len(grabs) == 1


# -- screen checks on a real GTK app ------------------------------------------------------------
@pytest.fixture(scope="module")
def mousepad(tmp_path_factory):
    from deskpilot.actions.executor import Executor
    from deskpilot.agent.desk.session import AppSpec, SessionSpec, open_sandbox, wait_until_ready
    from deskpilot.perception import Capturer

    folder = tmp_path_factory.mktemp("mousepad")
    (folder / "notes.txt").write_text("Quarterly totals\nApples 42\n", encoding="utf-8")
    # a steady caret: a baseline taken while it blinked off would differ for good once GTK stops blinking
    no_blink = ('mkdir -p "$HOME/.config/gtk-3.0" && printf "[Settings]\\ngtk-cursor-blink=false\\n" '
                '> "$HOME/.config/gtk-3.0/settings.ini" && exec mousepad "$0"')
    spec = SessionSpec(size=(1280, 800), shares=[str(folder)], maximize=False,  # regions below assume its own size
                       apps=[AppSpec(argv=["/bin/sh", "-c", no_blink, str(folder / "notes.txt")])])
    sb, apps = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        executor = Executor.for_sandbox(sb)
        try:
            wait_until_ready(sb, capturer, handles=apps)
            sb.wait_for_window("Mousepad")
            yield sb, capturer, executor, folder
        finally:
            executor.close()
            capturer.close()


def test_screen_checks_on_mousepad(mousepad):
    from deskpilot.actions.models import Key, Type
    from deskpilot.agent.desk.screens import settle_blocking
    from deskpilot.perception.ocr import wait_for_text

    sb, capturer, executor, folder = mousepad
    apples = wait_for_text(capturer, "Apples 42", timeout=10)[0].box
    baseline = folder / "baseline.png"
    settle_blocking(capturer.grab)[0].image.save(baseline)
    out = folder / "out1"
    ctx = CheckContext(base_dir=folder, screen=capturer.grab, sandbox=sb, out_dir=out)
    cases = [
        ({"text_visible": "Apples 42"}, True), ({"text_visible": "Bananas 7"}, False),
        ({"text_visible": "apples  42", "region": [max(0, apples[0] - 5), max(0, apples[1] - 5), apples[2] + 5, apples[3] + 5]}, True),
        ({"text_visible": "Apples 42", "region": [apples[2] + 40, apples[3] + 40, 1280, 800]}, False),
        ({"text_absent": "Bananas"}, True), ({"text_absent": "Quarterly"}, False),
        ({"window_title": "notes.txt - Mousepad"}, True), ({"window_title": "Mousepad", "focused": True}, True),
        ({"window_title": "LibreOffice"}, False),
        ({"screenshot_matches": "baseline.png"}, True), ({"screenshot_matches": "nothing.png"}, False),
    ]
    results = run_checks([c for c, _ in cases], ctx)
    assert [(r.check, r.passed) for r in results] == cases, [r.line() for r, (_, want) in zip(results, cases) if r.passed != want]
    assert "Quarterly totals" in results[1].message  # what was read is named (tree or OCR)
    assert "windows: ['" in results[8].message and "Mousepad" in results[8].message
    assert results[10].evidence["actual"] and Path(results[10].evidence["actual"]).is_file()

    # change the text in the app: the baseline must no longer match, and the diff image says where
    executor.perform(Key(keys=["ctrl", "End"]))
    executor.perform(Type(text="Bananas 7"))
    executor.perform(Key(keys=["ctrl", "s"]))
    settle_blocking(capturer.grab, first_delay=0.3, cap=5)
    ctx = CheckContext(base_dir=folder, screen=capturer.grab, sandbox=sb, out_dir=folder / "out2")
    after = run_checks([{"screenshot_matches": "baseline.png"}, {"text_visible": "Bananas 7"},
                        {"file": "notes.txt", "contains": "Apples 42\nBananas 7"}], ctx)
    assert [r.passed for r in after] == [False, True, True], [r.line() for r in after]
    shot = after[0]
    assert "largest change" in shot.message and shot.evidence["diff"] in shot.message
    assert Image.open(shot.evidence["diff"]).size == (1280, 800)
    banana = after[1].evidence["found"][0]["box"]
    assert any(r["box"][0] <= banana[2] and banana[0] <= r["box"][2] and r["box"][1] <= banana[3]
               and banana[1] <= r["box"][3] for r in shot.evidence["regions"])  # a region covers the new text
    changed = [r["box"] for r in shot.evidence["regions"]]
    masked = run_checks([{"screenshot_matches": "baseline.png", "masks": changed}], ctx)[0]
    assert masked.passed, masked.line()


def test_spreadsheet_and_pdf_checks_on_files_libreoffice_wrote(tmp_path):
    """The .ods reader is ours: check it (and openpyxl, pypdf) against what LibreOffice really writes."""
    import subprocess

    (tmp_path / "t.csv").write_text("Item,Qty,Price\napples,3,1.5\npears,10,0.25\nTotal,,=B2*C2+B3*C3\n")
    for fmt in ("ods", "xlsx", "pdf"):
        subprocess.run(["localc", f"-env:UserInstallation=file://{tmp_path / 'profile'}", "--headless",
                        "--convert-to", fmt, "--outdir", str(tmp_path), str(tmp_path / "t.csv")],
                       check=True, capture_output=True, timeout=120)
    cases = [({"file": "t.ods", "xlsx_cell": {"cell": "C4", "equals": 7}}, True),  # a formula's value
             ({"file": "t.ods", "xlsx_cell": {"cell": "A3", "equals": "pears"}}, True),
             ({"file": "t.ods", "xlsx_cell": {"cell": "B3", "equals": 11}}, False),
             ({"file": "t.ods", "xlsx_cell": {"cell": "B4", "equals": 1}}, False),  # an empty cell
             ({"file": "t.xlsx", "xlsx_cell": {"cell": "C4", "equals": 7}}, True),
             ({"file": "t.xlsx", "xlsx_cell": {"sheet": "t", "cell": "C2", "equals": "1.5"}}, True),
             ({"file": "t.pdf", "pdf_contains": "pears"}, True), ({"file": "t.pdf", "pdf_contains": "plums"}, False)]
    results = run_checks([c for c, _ in cases], CheckContext(base_dir=tmp_path))
    assert [(r.check, r.passed) for r in results] == cases, [r.line() for r in results]
    assert results[3].message == "B4 is None, expected 1"


def test_formula_checks_tell_a_formula_from_a_typed_number(tmp_path):
    """LibreOffice writes both files: C4 holds a formula, C5 the same number typed in; equals cannot tell them apart."""
    import subprocess

    (tmp_path / "t.csv").write_text("Item,Qty,Price\napples,3,1.5\npears,10,0.25\nTotal,,=SUM(C2:C3)\nTyped,,1.75\n")
    for fmt in ("ods", "xlsx"):
        subprocess.run(["localc", f"-env:UserInstallation=file://{tmp_path / 'profile'}", "--headless",
                        "--convert-to", fmt, "--outdir", str(tmp_path), str(tmp_path / "t.csv")],
                       check=True, capture_output=True, timeout=120)
    cases = []
    for fmt in ("ods", "xlsx"):
        cases += [({"file": f"t.{fmt}", "xlsx_cell": {"cell": "C4", "formula": "=SUM(C2:C3)"}}, True),
                  ({"file": f"t.{fmt}", "xlsx_cell": {"cell": "C4", "formula": "= sum(c2:c3)", "equals": 1.75}}, True),
                  ({"file": f"t.{fmt}", "xlsx_cell": {"cell": "C4", "formula": "=SUM(C2:C3)", "equals": 2}}, False),
                  ({"file": f"t.{fmt}", "xlsx_cell": {"cell": "C4", "formula": "=SUM(C2:C9)"}}, False),
                  ({"file": f"t.{fmt}", "xlsx_cell": {"cell": "C5", "equals": 1.75}}, True),
                  ({"file": f"t.{fmt}", "xlsx_cell": {"cell": "C5", "formula": "=SUM(C2:C3)"}}, False)]
    results = run_checks([c for c, _ in cases], CheckContext(base_dir=tmp_path))
    assert [(r.check, r.passed) for r in results] == cases, [r.line() for r in results]
    assert results[5].message == "C5 holds the value 1.75, not a formula (expected =SUM(C2:C3))"
    assert results[9].message.startswith("C4 has formula of:=SUM([.C2:.C3]), expected =SUM(C2:C9)") or \
        results[9].message.startswith("C4 has formula =SUM(C2:C3), expected =SUM(C2:C9)"), results[9].message
    assert results[0].evidence["formula"].startswith("of:=SUM(")  # ODF's own spelling, kept as evidence


def test_update_baselines_only_rewrites_what_is_missing_or_differs(tmp_path, monkeypatch):
    """No desktop needed: the 'screen' is an image. A matching baseline is left byte for byte."""
    red, blue = Image.new("RGB", (64, 48), (200, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 200))
    check = {"screenshot_matches": "shots/b.png"}
    monkeypatch.setenv("DESKPILOT_UPDATE_BASELINES", "yes")
    assert CheckContext().update_baselines
    monkeypatch.setenv("DESKPILOT_UPDATE_BASELINES", "0")
    assert not CheckContext().update_baselines

    missing = run_checks([check], CheckContext(base_dir=tmp_path, screen=red, update_baselines=True))[0]
    assert missing.passed and "was missing" in missing.message
    path = tmp_path / "shots" / "b.png"
    with Image.open(path) as img:
        assert img.convert("RGB").getpixel((5, 5)) == (200, 0, 0)
    before = path.stat().st_mtime_ns, path.read_bytes()
    same = run_checks([check], CheckContext(base_dir=tmp_path, screen=red, update_baselines=True))[0]
    assert same.passed and "matches b.png" in same.message and (path.stat().st_mtime_ns, path.read_bytes()) == before
    plain = run_checks([check], CheckContext(base_dir=tmp_path, screen=blue))[0]
    assert not plain.passed and path.read_bytes() == before[1]
    changed = run_checks([check], CheckContext(base_dir=tmp_path, screen=blue, update_baselines=True))[0]
    assert changed.passed and changed.message.startswith("baseline b.png differed (")
    with Image.open(path) as img:
        assert img.convert("RGB").getpixel((5, 5)) == (0, 0, 200)
    assert [p.name for p in path.parent.iterdir()] == ["b.png"]  # no temp file left
    assert path.stat().st_mode & 0o777 == 0o644

    host = tmp_path / "host.txt"  # a link where the baseline goes: replaced, its target untouched
    host.write_text("host file")
    planted = tmp_path / "shots" / "c.png"
    planted.symlink_to(host)
    wrote = run_checks([{"screenshot_matches": "shots/c.png"}],
                       CheckContext(base_dir=tmp_path, screen=red, update_baselines=True))[0]
    assert wrote.passed and host.read_text() == "host file" and not planted.is_symlink()
    planted.unlink()
    planted.symlink_to(host)
    read = run_checks([{"screenshot_matches": "shots/c.png"}], CheckContext(base_dir=tmp_path, screen=red))[0]
    assert not read.passed and read.message.startswith(f"baseline {planted} is a symbolic link")

    (tmp_path / "hostdir").mkdir()  # a folder link: nothing read or written through it, even when updating
    (tmp_path / "linked").symlink_to(tmp_path / "hostdir")
    for update in (False, True):
        through = run_checks([{"screenshot_matches": "linked/d.png"}],
                             CheckContext(base_dir=tmp_path, screen=red, update_baselines=update))[0]
        assert not through.passed and through.message.startswith(f"{tmp_path / 'linked'} is a symbolic link")
    assert list((tmp_path / "hostdir").iterdir()) == []


def test_file_checks_do_not_follow_links_an_app_could_plant(tmp_path, monkeypatch):
    """The share is the app's: a link in it must not make the host read (and report) one of its own files."""
    from deskpilot.agent.checks import reading

    host = tmp_path / "host"
    host.mkdir()
    (host / "secret.txt").write_text("root-password-123\n")
    base = tmp_path / "suite"
    share = base / "share"
    share.mkdir(parents=True)
    (share / "ok.txt").write_text("all good\n")
    (share / "out.txt").symlink_to(host / "secret.txt")
    (share / "data").symlink_to(host)
    os.mkfifo(share / "pipe.txt")
    ctx = CheckContext(base_dir=base)
    results = run_checks([
        {"file": "share/ok.txt", "contains": "good"},
        {"file": "share/out.txt", "contains": "root"},
        {"file": "share/data/secret.txt", "regex": "root"},
        {"file": str(share / "out.txt"), "contains": "root"},
        {"file": "share/pipe.txt", "contains": "x"},
        {"file": "share/../share/ok.txt", "json": {"path": "", "equals": 1}},
    ], ctx)
    assert [r.passed for r in results] == [True, False, False, False, False, False], [r.line() for r in results]
    assert results[1].message == f"{share / 'out.txt'} is a symbolic link: checks do not follow links (an app may have made it)"
    assert results[2].message.startswith(f"{share / 'data'} is a symbolic link")
    assert results[3].message.startswith(f"{share / 'out.txt'} is a symbolic link")
    assert results[4].message == f"{share / 'pipe.txt'} is not a file"
    assert "is not valid JSON" in results[5].message  # '..' that stays inside is read normally
    assert not any("root-password" in json.dumps(r.model_dump()) for r in results)

    # links ABOVE the check's folder are the user's own: followed
    (tmp_path / "via").symlink_to(base)
    assert run_checks([{"file": "share/ok.txt", "contains": "good"}], CheckContext(base_dir=tmp_path / "via"))[0].passed

    monkeypatch.setattr(reading, "MAX_BYTES", 4)  # the one safe reader (checks.reading) holds the cap
    big = run_checks([{"file": "share/ok.txt", "contains": "good"}], ctx)[0]
    assert not big.passed and big.message == f"{share / 'ok.txt'} is larger than the 4 bytes a check reads"


def test_modified_during_run_fails_an_old_file_and_is_the_default_for_new_ones(tmp_path):
    """An output left by an earlier run passes a plain check; modified_during_run tells it from a fresh one."""
    import os

    from deskpilot.agent.checks.files import existing, file_clock

    old, fresh = tmp_path / "old.pdf.txt", tmp_path / "fresh.txt"
    old.write_text("Invoice 41")
    os.utime(old, (old.stat().st_atime - 3600, old.stat().st_mtime - 3600))  # from an earlier run
    checks = [{"file": "old.pdf.txt", "contains": "Invoice"},
              {"file": "old.pdf.txt", "contains": "Invoice", "modified_during_run": True},
              {"file": "fresh.txt", "contains": "new"},  # did not exist at the start: must be new (default)
              {"file": "fresh.txt", "exists": True, "modified_during_run": True},
              {"file": "gone.txt", "exists": False, "modified_during_run": True}]
    before = existing(checks, tmp_path)
    started = file_clock(tmp_path)
    fresh.write_text("new")
    ctx = CheckContext(base_dir=tmp_path, run_started_ns=started, existed=before)
    results = run_checks(checks, ctx)
    assert [r.passed for r in results] == [True, False, True, True, True], [r.line() for r in results]
    assert results[1].message.startswith(f"{old} was not written during this run: last modified 36")
    assert results[1].evidence["modified_during_run"] is False
    assert before == {str(old)}
    # fresh.txt was there before a second run started and not written since: only an explicit request fails it
    os.utime(fresh, (fresh.stat().st_atime - 10, fresh.stat().st_mtime - 10))
    again = CheckContext(base_dir=tmp_path, run_started_ns=file_clock(tmp_path), existed=existing(checks, tmp_path))
    assert [r.passed for r in run_checks(checks[2:4], again)] == [True, False]
    assert parse_check(checks[1]).spec() == checks[1]


def test_a_file_check_after_done_waits_for_the_app_to_finish_writing(tmp_path):
    """LibreOffice redraws before it writes the file: the check reads it again until it holds (up to a limit)."""
    import threading

    out = tmp_path / "sales.csv"
    out.write_text("region,q1\n")
    check = {"file": "sales.csv", "contains": "Total"}
    assert not run_checks([check], CheckContext(base_dir=tmp_path))[0].passed  # no wait: reads the old file
    writer = threading.Timer(0.5, lambda: out.write_text("region,q1\nTotal,455\n"))
    writer.start()
    result = run_checks([check], CheckContext(base_dir=tmp_path, file_wait_s=10))[0]
    writer.join()
    assert result.passed and 0.4 < result.ms / 1000 < 10, result.line()
    late = run_checks([{"file": "sales.csv", "contains": "never"}], CheckContext(base_dir=tmp_path, file_wait_s=0.3))[0]
    assert not late.passed and late.ms >= 300
