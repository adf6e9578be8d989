"""Document comparisons: OSWorld's ``compare_docx_files``, ``compare_line_spacing``, ``compare_docx_tables``, ``compare_pdfs``.

    {file: out.docx, compare_docx: {expected: gold.docx, ignore_blanks: true, ignore_case: false}}
    {file: out.docx, line_spacing: {expected: gold.docx}}
    {file: out.pdf, compare_pdf: {expected: gold.pdf}}
    {file: out.docx, docx_tables: {expected: gold.docx}}

Semantics follow OSWorld's evaluators (metrics/docs.py, metrics/chrome.py),
written here with python-docx, odfpy and pypdf. Paragraph texts are compared;
with ``ignore_blanks`` (the default) all runs of white space count as one
space. OSWorld scores ``content_only`` and PDFs by a similarity ratio; a
check passes only at 1.0 (the same text), and the ratio is in the evidence.
"""

from __future__ import annotations

import difflib
import io
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from deskpilot.agent.checks import base as m
from deskpilot.errors import UsageError

Outcome = tuple[bool, str, dict[str, Any]]


class DocxSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    expected: str
    ignore_blanks: bool = True
    ignore_case: bool = False
    ignore_order: bool = False
    content_only: bool = False


class CompareDocx(m._FileCheck):
    """The document's paragraphs read like the reference's (.docx or .odt, both the same kind)."""

    kind = "file_compare_docx"
    compare_docx: DocxSpec

    def describe(self) -> str:
        return f"document {self.file} reads like {Path(self.compare_docx.expected).name}"


class ReferenceSpec(BaseModel):
    """A comparison whose only setting is the reference file (line spacing, tables, PDF text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    expected: str


class LineSpacing(m._FileCheck):
    """Same text as the reference, and every paragraph has the reference's line spacing (.docx)."""

    kind = "file_line_spacing"
    line_spacing: ReferenceSpec

    def describe(self) -> str:
        return f"document {self.file} has the line spacing of {Path(self.line_spacing.expected).name}"


class DocxTables(m._FileCheck):
    """The document's tables have the reference's shape and cell texts (OSWorld's compare_docx_tables)."""

    kind = "file_docx_tables"
    docx_tables: ReferenceSpec

    def describe(self) -> str:
        return f"document {self.file} has the tables of {Path(self.docx_tables.expected).name}"


class ComparePdf(m._FileCheck):
    kind = "file_compare_pdf"
    compare_pdf: ReferenceSpec

    def describe(self) -> str:
        return f"PDF {self.file} has the text of {Path(self.compare_pdf.expected).name}"


def _docx(data: bytes, name: str):
    try:
        from docx import Document
    except ImportError:
        raise UsageError("document checks need the [office] extra: pip install 'deskpilot[office]'") from None
    try:
        return Document(io.BytesIO(data))
    except Exception as err:  # python-docx raises many kinds for a file that is not a document
        raise UsageError(f"cannot read {name} as a .docx document ({type(err).__name__})") from None


def _odt_paragraphs(data: bytes) -> list[str]:
    from odf import teletype
    from odf.opendocument import load
    from odf.text import P

    return [teletype.extractText(p) for p in load(io.BytesIO(data)).getElementsByType(P)]


def paragraphs(data: bytes, path: Path) -> list[str]:
    if path.suffix.lower() == ".odt":
        try:
            return _odt_paragraphs(data)
        except Exception as err:
            raise UsageError(f"cannot read {path.name} as an .odt document ({type(err).__name__})") from None
    return [p.text for p in _docx(data, path.name).paragraphs]


def _gold(expected: str, base: Path) -> tuple[Path, bytes]:
    from deskpilot.agent.checks.reading import locate, read_file

    gold, anchor = locate(expected, base)
    return gold, read_file(gold, anchor)


def _flat(texts: list[str]) -> str:
    return re.sub(r"\s+", " ", "\n".join(texts)).strip()


def _same_text(got: list[str], want: list[str], spec: DocxSpec) -> tuple[bool, str, float]:
    if spec.ignore_order:
        got, want = sorted(got), sorted(want)
    if spec.content_only or spec.ignore_blanks:
        a, b = _flat(got), _flat(want)
        if spec.ignore_case:
            a, b = a.lower(), b.lower()
        ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a != b else 1.0
        if a == b:
            return True, f"the same text ({len(a)} chars)", 1.0
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return False, f"texts differ at char {at}: {a[at:at + 40]!r} vs {b[at:at + 40]!r}", round(ratio, 4)
    if len(got) != len(want):
        return False, f"{len(got)} paragraphs, expected {len(want)}", 0.0
    for n, (p, q) in enumerate(zip(got, want), 1):
        if (p.lower() != q.lower()) if spec.ignore_case else (p != q):
            return False, f"paragraph {n} is {p[:60]!r}, expected {q[:60]!r}", 0.0
    return True, f"{len(got)} paragraphs equal", 1.0


def compare_docx(check: CompareDocx, path: Path, data: bytes, base: Path) -> Outcome:
    spec = check.compare_docx
    gold, gold_data = _gold(spec.expected, base)
    evidence: dict[str, Any] = {"path": str(path), "expected": str(gold)}
    if path.suffix.lower() != gold.suffix.lower() or path.suffix.lower() not in (".docx", ".odt"):
        return False, f"{path.name} and {gold.name} are not both .docx or both .odt", evidence
    passed, message, ratio = _same_text(paragraphs(data, path), paragraphs(gold_data, gold), spec)
    return passed, message, dict(evidence, ratio=ratio)


def line_spacing(check: LineSpacing, path: Path, data: bytes, base: Path) -> Outcome:
    gold, gold_data = _gold(check.line_spacing.expected, base)
    evidence: dict[str, Any] = {"path": str(path), "expected": str(gold)}
    got, want = _docx(data, path.name).paragraphs, _docx(gold_data, gold.name).paragraphs
    same, message, _ = _same_text([p.text for p in got], [p.text for p in want], DocxSpec(expected=str(gold)))
    if not same:
        return False, message, evidence
    if len(got) != len(want):
        return False, f"{len(got)} paragraphs, expected {len(want)}", evidence
    for n, (p, q) in enumerate(zip(got, want), 1):
        a, b = p.paragraph_format.line_spacing, q.paragraph_format.line_spacing
        if a != b:
            return False, f"paragraph {n} has line spacing {a!r}, expected {b!r}", evidence
    return True, f"{len(got)} paragraphs with the reference's line spacing", evidence


def docx_tables(check: DocxTables, path: Path, data: bytes, base: Path) -> Outcome:
    gold, gold_data = _gold(check.docx_tables.expected, base)
    got, want = _docx(data, path.name).tables, _docx(gold_data, gold.name).tables
    evidence: dict[str, Any] = {"path": str(path), "expected": str(gold), "tables": len(got), "expected_tables": len(want)}
    if len(got) != len(want):
        return False, f"{len(got)} tables, expected {len(want)}", evidence
    for n, (a, b) in enumerate(zip(got, want), 1):
        if (len(a.rows), len(a.columns)) != (len(b.rows), len(b.columns)):
            return False, f"table {n} is {len(a.rows)}x{len(a.columns)}, expected {len(b.rows)}x{len(b.columns)}", evidence
        for i in range(len(a.rows)):
            for j in range(len(a.columns)):
                x, y = a.cell(i, j).text.strip(), b.cell(i, j).text.strip()
                if x != y:
                    return False, f"table {n} cell ({i + 1}, {j + 1}) is {x[:40]!r}, expected {y[:40]!r}", evidence
    return True, f"{len(got)} table(s) equal", evidence


def _pdf_text(data: bytes, name: str) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError:
        raise UsageError("PDF checks need the [office] extra: pip install 'deskpilot[office]'") from None
    try:
        return "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages).strip()
    except PyPdfError as err:
        raise UsageError(f"cannot read {name} as a PDF ({err})") from None


def compare_pdf(check: ComparePdf, path: Path, data: bytes, base: Path) -> Outcome:
    gold, gold_data = _gold(check.compare_pdf.expected, base)
    a, b = _pdf_text(data, path.name), _pdf_text(gold_data, gold.name)
    ratio = 1.0 if a == b else round(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio(), 4)
    evidence = {"path": str(path), "expected": str(gold), "ratio": ratio, "chars": len(a), "expected_chars": len(b)}
    if a == b:
        return True, f"the same text ({len(a)} chars)", evidence
    return False, f"texts differ (similarity {ratio:.3f})", evidence
