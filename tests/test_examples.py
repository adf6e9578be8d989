"""The shipped examples/ workflows on real LibreOffice Calc and Writer, end to end.

Each runs exactly as a user would (`deskpilot workflow run FLOW --script
replies.json` from a folder holding `work/`), with the hand-written GLM-4.5V
replies next to the workflow; the outputs are then read back independently
of the workflow's own checks (openpyxl for the formulas, pypdf for the text).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deskpilot.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
runner = CliRunner()
needs_office = pytest.mark.skipif(not (shutil.which("localc") and shutil.which("lowriter")),
                                  reason="LibreOffice Calc/Writer are not installed (scripts/setup.sh installs them)")


def run_example(name: str, tmp_path: Path, monkeypatch, *inputs: str, extra: tuple[str, ...] = ()) -> Path:
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    for item in inputs:
        shutil.copy(EXAMPLES / name / item, work / item)
    flow = EXAMPLES / name / "workflow.yaml"
    result = runner.invoke(app, ["workflow", "run", str(flow), "--script", str(EXAMPLES / name / "replies.json"),
                                 "--out", "run", "--quiet", *extra])
    assert result.exit_code == 0, result.output + (tmp_path / "run" / "workflow.jsonl").read_text()
    return work


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join((page.extract_text() or "") for page in PdfReader(path).pages).split())


def test_examples_validate():
    for flow in sorted(EXAMPLES.glob("*/workflow.yaml")):
        result = runner.invoke(app, ["workflow", "check", str(flow), "--var", f"work={flow.parent}"])
        assert result.exit_code == 0, result.output


@needs_office
def test_calc_totals(tmp_path, monkeypatch):
    from openpyxl import load_workbook

    work = run_example("calc-totals", tmp_path, monkeypatch, "sales.csv")
    sheet = load_workbook(work / "totals.xlsx").worksheets[0]
    assert [c.value for c in sheet[6]] == ["Total", "=SUM(B2:B5)", "=SUM(C2:C5)", "=SUM(D2:D5)"]
    values = load_workbook(work / "totals.xlsx", data_only=True).worksheets[0]
    assert [c.value for c in values[6]] == ["Total", 455, 485, 510]
    assert [c.value for c in values[5]] == ["West", 45, 60, 75]  # the data is untouched
    assert sorted(p.name for p in work.iterdir()) == ["sales.csv", "totals.xlsx"]  # no lock files left
    from deskpilot.workflow.record import read_log

    end = read_log(tmp_path / "run")[-1]
    assert end["vars"]["q1_total"] == "455"  # read off the screen by the agent, checked against the file


@needs_office
def test_writer_letter_from_variables(tmp_path, monkeypatch):
    work = run_example("writer-letter", tmp_path, monkeypatch,
                       extra=("--var", "recipient=Barbara Liskov", "--var", "city=Boston", "--var", "amount=99.00"))
    text = pdf_text(work / "letter.pdf")
    assert text.startswith("Dear Barbara Liskov, Thank you for your order from Boston.")
    assert "We received your payment of EUR 99.00. Kind regards, The deskpilot team" in text


@needs_office
def test_batch_letters_one_pdf_per_row(tmp_path, monkeypatch):
    work = run_example("batch-letters", tmp_path, monkeypatch, "members.csv")
    expected = {"1": ("Grace Hopper", "Arlington"), "2": ("Ada Lovelace", "London"), "3": ("Alan Turing", "Wilmslow")}
    for key, (name, city) in expected.items():
        assert pdf_text(work / f"letter-{key}.pdf") == f"Dear {name}, Your membership in {city} is confirmed."



@needs_office
def test_a_rerun_over_old_outputs_meets_replace_and_fails_instead_of_passing(tmp_path, monkeypatch):
    """A re-run: letter-1.odt is there from before. Save As meets LibreOffice's "file already exists,
    replace?" and saves nothing; a plain check would pass on the old file, modified_during_run does not,
    and the next row's typing never happens (nothing stray is written)."""
    import os

    from deskpilot.workflow.record import read_log

    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "rows.csv").write_text("id,name\n1,Grace Hopper\n2,Ada Lovelace\n")
    old = work / "letter-1.odt"
    old.write_bytes(b"last week's letter")
    os.utime(old, (old.stat().st_atime - 3600, old.stat().st_mtime - 3600))
    (tmp_path / "flow.yaml").write_text(
        "name: rerun\n"
        "desktop: {size: 1280x800, apps: [lowriter], shares: [work]}\n"
        "steps:\n"
        "  - wait_for_window: LibreOffice Writer\n"
        "    quiet: 2\n"
        "  - foreach: work/rows.csv\n"
        "    steps:\n"
        "      - key: ctrl+a\n"
        "        window: LibreOffice Writer\n"
        "      - type: 'Dear {name}'\n"
        "        window: LibreOffice Writer\n"
        "      - key: ctrl+shift+s\n"
        "        window: LibreOffice Writer\n"
        "      - wait_for_window: Save\n"  # "Save As" (LibreOffice's own look) or "Save" (its GTK3 plugin)
        "        quiet: 1\n"
        "      - key: ctrl+a\n"  # the name field holds "Untitled 1.odt"; LibreOffice's own dialog leaves it unselected
        "      - type: \"letter-{id}.odt\\n\"\n"  # Enter: saves, or meets "replace?"
        "      - wait_for_window: LibreOffice\n"
        "        quiet: 2\n"
        "      - check:\n"
        "          - {file: 'work/letter-{id}.odt', exists: true}\n"
        "          - {file: 'work/letter-{id}.odt', exists: true, modified_during_run: true}\n"
    )
    result = runner.invoke(app, ["workflow", "run", "flow.yaml", "--out", "run", "--quiet"])
    assert result.exit_code == 1, result.output
    steps = [r for r in read_log(tmp_path / "run") if r["record"] == "step"]
    failed = steps[-1]
    assert failed["number"] == "2.1.8" and failed["status"] == "failed", [(s["number"], s["message"]) for s in steps]
    assert failed["checks"][0]["passed"]  # the old file is there: a plain check passes on it
    assert failed["checks"][1]["message"].startswith(f"{old} was not written during this run")
    assert old.read_bytes() == b"last week's letter"
    assert sorted(p.name for p in work.iterdir()) == ["letter-1.odt", "rows.csv"]  # row 2 never typed anywhere
