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
def test_batch_letters_over_last_runs_pdfs_stops_instead_of_passing_on_them(tmp_path, monkeypatch):
    """A re-run: letter-1.pdf is there from before, with the very text the check asks for. LibreOffice asks
    "replace?" and exports nothing; the check must not pass on the old PDF, and no row types into the dialog."""
    import os

    from test_checks import tiny_pdf

    from deskpilot.workflow.record import read_log

    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLES / "batch-letters" / "members.csv", work / "members.csv")
    old = work / "letter-1.pdf"
    old.write_bytes(tiny_pdf("Dear Grace Hopper, Your membership in Arlington is confirmed."))
    os.utime(old, (old.stat().st_atime - 3600, old.stat().st_mtime - 3600))
    before = old.read_bytes()
    flow = EXAMPLES / "batch-letters" / "workflow.yaml"
    result = runner.invoke(app, ["workflow", "run", str(flow), "--script", str(EXAMPLES / "batch-letters" / "replies.json"),
                                 "--out", "run", "--quiet"])
    assert result.exit_code == 1, result.output
    steps = [r for r in read_log(tmp_path / "run") if r["record"] == "step"]
    failed = steps[-1]
    assert failed["number"] == "2.1.6" and failed["status"] == "failed", [(s["number"], s["message"]) for s in steps]
    assert f"{old} was not written during this run" in failed["message"]
    assert old.read_bytes() == before
    assert sorted(p.name for p in work.iterdir()) == ["letter-1.pdf", "members.csv"]  # no stray file from row 2
