"""File checks: what an app saved, read back with ordinary libraries.

The files were written by apps we do not trust, and we read them as the
host's user (often root). So a check reads only a regular file of at most
``MAX_BYTES``, opened without blocking (a FIFO) and without following
symbolic links below its anchor: an app cannot point ``out.txt`` (or
``data/``) at a host file and have it copied into a report. The anchor
(`locate`) is the highest of: the folder a relative path starts from, the
shared folder the path lies in (apps can plant links anywhere in a share),
the file's own folder. The walk from the anchor down opens one folder at a
time with ``O_NOFOLLOW`` (no window for an app to swap a folder for a link),
for reads and for baseline writes alike. Parsers (csv, openpyxl, odfpy,
pypdf) get those bytes, not the path.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from deskpilot.agent.checks import models as m
from deskpilot.agent.checks.reading import (  # noqa: F401  (the checks' names for them)
    MAX_BYTES, Unreadable, link_refused, links_below, locate, open_folder, read_file,
)
from deskpilot.errors import UsageError

Outcome = tuple[bool, str, dict[str, Any]]
_EXCERPT = 300


def same(actual: Any, expected: Any) -> bool:
    """Cell/value equality the way a person means it: 42 == "42.0", " x " == "x"."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(actual).strip().lower() == str(expected).strip().lower()
    try:
        return abs(float(str(actual).strip()) - float(str(expected).strip())) < 1e-9
    except ValueError:
        pass
    if actual is None or expected is None:
        return (actual in (None, "")) and (expected in (None, ""))
    return str(actual).strip() == str(expected).strip()


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + f"... ({len(text)} chars)"


def _lstat(path: Path, anchor: Path) -> os.stat_result | None:
    """The file's own status (a link is not followed), reached as `read_file` would; None if not there."""
    try:
        folder = open_folder(path, anchor)
    except Unreadable:
        return None
    try:
        return os.stat(path.name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(folder)


def exists(check: m.FileExists, path: Path, anchor: Path) -> Outcome:
    info = _lstat(path, anchor)
    there = info is not None
    size = info.st_size if info is not None and stat.S_ISREG(info.st_mode) else None
    evidence = {"path": str(path), "exists": there, "size": size}
    if there == check.exists:
        return True, f"{path} {'exists' if there else 'does not exist'}", evidence
    return False, f"{path} {'exists' if there else 'does not exist'}", evidence


def contains(check: m.FileContains, path: Path, data: bytes) -> Outcome:
    text = _text(data)
    pos = text.find(check.contains)
    evidence = {"path": str(path), "size": len(text), "excerpt": _excerpt(text)}
    if pos >= 0:
        line = text.count("\n", 0, pos) + 1
        return True, f"found on line {line}", dict(evidence, line=line)
    return False, f"{check.contains!r} is not in {path.name} ({len(text)} chars)", evidence


def regex(check: m.FileRegex, path: Path, data: bytes) -> Outcome:
    text = _text(data)
    found = re.search(check.regex, text, re.MULTILINE)
    evidence = {"path": str(path), "size": len(text), "excerpt": _excerpt(text)}
    if found:
        return True, f"matched {found.group(0)[:80]!r}", dict(evidence, match=found.group(0)[:200])
    return False, f"/{check.regex}/ does not match {path.name} ({len(text)} chars)", evidence


_STEP = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")


def json_at(document: Any, path: str) -> Any:
    """The value at ``a.b[0].c``; UsageError naming the step that is missing."""
    value, pos, walked = document, 0, "$"
    while pos < len(path):
        step = _STEP.match(path, pos)
        if not step or step.end() == pos:
            raise UsageError(f"bad JSON path {path!r} at character {pos + 1}")
        key, index = step.group(1), step.group(2)
        try:
            value = value[int(index)] if index is not None else value[key]
        except (KeyError, IndexError, TypeError):
            raise UsageError(f"{walked} has no {'[' + index + ']' if index is not None else repr(key)}") from None
        walked += f"[{index}]" if index is not None else f".{key}"
        pos = step.end()
    return value


def json_value(check: m.FileJson, path: Path, data: bytes) -> Outcome:
    try:
        document = json.loads(_text(data))
    except json.JSONDecodeError as err:
        return False, f"{path.name} is not valid JSON (line {err.lineno}: {err.msg})", {"path": str(path)}
    try:
        actual = json_at(document, check.json_.path)
    except UsageError as err:
        return False, str(err), {"path": str(path)}
    evidence = {"path": str(path), "at": check.json_.path, "actual": actual}
    if actual == check.json_.equals:
        return True, f"{check.json_.path or 'document'} is {json.dumps(actual)[:80]}", evidence
    return False, f"{check.json_.path or 'document'} is {json.dumps(actual)[:80]}, expected " \
                  f"{json.dumps(check.json_.equals)[:80]}", evidence


def csv_cell(check: m.FileCsvCell, path: Path, data: bytes) -> Outcome:
    at = check.csv_cell
    text = _text(data)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    col = at.col
    if isinstance(col, str):
        header = [h.strip() for h in rows[0]] if rows else []
        if col not in header:
            return False, f"no column named {col!r} (header: {header})", {"path": str(path), "header": header}
        col = header.index(col) + 1
    evidence = {"path": str(path), "rows": len(rows)}
    if at.row > len(rows) or col > len(rows[at.row - 1]):
        return False, f"{path.name} has no cell at row {at.row}, col {col} ({len(rows)} rows)", evidence
    actual = rows[at.row - 1][col - 1]
    evidence["actual"] = actual
    if same(actual, at.equals):
        return True, f"row {at.row} col {at.col} is {actual!r}", evidence
    return False, f"row {at.row} col {at.col} is {actual!r}, expected {at.equals!r}", evidence


def _xlsx_cell(path: Path, data: bytes, sheet: str | None, cell: str, *, formula: bool = False) -> tuple[Any, list[str]]:
    """The cell's saved value, or with ``formula`` what was typed in it (``=SUM(C2:C9)`` or a plain value)."""
    try:
        import openpyxl
    except ImportError:
        raise UsageError("xlsx checks need the [office] extra: pip install 'deskpilot[office]'") from None
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=not formula)
    try:
        names = list(book.sheetnames)
        if sheet is not None and sheet not in names:
            raise UsageError(f"{path.name} has no sheet {sheet!r} (sheets: {names})")
        ws = book[sheet] if sheet else book[names[0]]
        return ws[cell].value, names
    finally:
        book.close()


def _ods_cell(path: Path, data: bytes, sheet: str | None, cell: str, *, formula: bool = False) -> tuple[Any, list[str]]:
    try:
        from odf.opendocument import load
        from odf.table import Table, TableRow
        from odf.namespaces import TABLENS, OFFICENS
    except ImportError:
        raise UsageError("ods checks need the [office] extra: pip install 'deskpilot[office]'") from None
    from openpyxl.utils.cell import coordinate_from_string, column_index_from_string

    letters, row_no = coordinate_from_string(cell)
    col_no = column_index_from_string(letters)
    doc = load(io.BytesIO(data))
    tables = doc.spreadsheet.getElementsByType(Table)
    names = [t.getAttrNS(TABLENS, "name") for t in tables]
    if sheet is not None and sheet not in names:
        raise UsageError(f"{path.name} has no sheet {sheet!r} (sheets: {names})")
    table = tables[names.index(sheet)] if sheet else tables[0]
    r = 0
    for row in table.getElementsByType(TableRow):
        r += int(row.getAttrNS(TABLENS, "number-rows-repeated") or 1)
        if r < row_no:
            continue
        c = 0
        for tc in row.childNodes:
            if tc.qname[1] not in ("table-cell", "covered-table-cell"):
                continue
            c += int(tc.getAttrNS(TABLENS, "number-columns-repeated") or 1)
            if c >= col_no:
                typed = tc.getAttrNS(TABLENS, "formula")
                if formula and typed:
                    return typed, names
                kind = tc.getAttrNS(OFFICENS, "value-type")
                if kind in ("float", "percentage", "currency"):
                    return float(tc.getAttrNS(OFFICENS, "value")), names
                if kind == "boolean":
                    return tc.getAttrNS(OFFICENS, "boolean-value") == "true", names
                text = "\n".join(str(p) for p in tc.childNodes if p.qname[1] == "p")
                return (text or None), names
        return None, names
    return None, names


_ODF_RANGE = re.compile(r"\[\$?[^.\[\]]*\.([A-Z$]+[0-9$]+)(?::\$?[^.\[\]]*\.([A-Z$]+[0-9$]+))?\]", re.IGNORECASE)


def plain_formula(text: str) -> str:
    """A formula in one spelling for comparing: ``of:=SUM([.C2:.C9])`` and ``= sum(C2:C9)`` -> ``=SUM(C2:C9)``.

    ODF (.ods) writes ``of:`` and ``[.C2:.C9]`` references with ``;`` between
    arguments; OOXML (.xlsx) writes ``C2:C9`` and ``,``. Spaces and case do
    not matter (text inside quotes is compared as it is).
    """
    text = text.strip().removeprefix("of:").removeprefix("msoxl:")
    text = _ODF_RANGE.sub(lambda g: g.group(1) + (":" + g.group(2) if g.group(2) else ""), text)
    parts = re.split(r'("[^"]*")', text)  # keep quoted text as written
    text = "".join(p if p.startswith('"') else re.sub(r"\s+", "", p).upper().replace(";", ",") for p in parts)
    return text if text.startswith("=") else "=" + text


def sheet_cell(check: m.FileSheetCell, path: Path, data: bytes) -> Outcome:
    at = check.xlsx_cell
    reader = _ods_cell if path.suffix.lower() == ".ods" else _xlsx_cell
    try:
        actual, sheets = reader(path, data, at.sheet, at.cell)
        typed = reader(path, data, at.sheet, at.cell, formula=True)[0] if at.formula is not None else None
    except UsageError as err:
        return False, str(err), {"path": str(path)}
    except Exception as err:  # openpyxl/odfpy raise many kinds for a file that is not a spreadsheet
        return False, f"cannot read {path.name} as a spreadsheet ({type(err).__name__}: {err})", {"path": str(path)}
    evidence = {"path": str(path), "sheets": sheets, "cell": at.cell, "actual": actual}
    where = f"{at.sheet + '!' if at.sheet else ''}{at.cell}"
    if at.formula is not None:
        if not (isinstance(typed, str) and typed.strip().startswith(("=", "of:"))):
            evidence["formula"] = None
            return False, f"{where} holds the value {typed!r}, not a formula (expected {at.formula})", evidence
        evidence["formula"] = typed
        if plain_formula(typed) != plain_formula(at.formula):
            return False, f"{where} has formula {typed}, expected {at.formula}", evidence
    if at.wants_value() and not same(actual, at.equals):
        return False, f"{where} is {actual!r}, expected {at.equals!r}", evidence
    said = f"{where} is {actual!r}" + (f" from {typed}" if at.formula is not None else "")
    return True, said, evidence


def pdf_contains(check: m.FilePdfContains, path: Path, data: bytes) -> Outcome:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise UsageError("PDF checks need the [office] extra: pip install 'deskpilot[office]'") from None
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except PyPdfError as err:
        return False, f"cannot read {path.name} as a PDF ({err})", {"path": str(path)}
    flat = " ".join(text.split())
    evidence = {"path": str(path), "pages": len(reader.pages), "excerpt": _excerpt(flat)}
    if " ".join(check.pdf_contains.split()) in flat:
        return True, f"found in the text of {len(reader.pages)} page(s)", evidence
    return False, f"{check.pdf_contains!r} is not in the text of {path.name} ({len(reader.pages)} page(s))", evidence


READERS: dict[str, Callable[[Any, Path, bytes], Outcome]] = {
    "file_contains": contains, "file_regex": regex, "file_json": json_value,
    "file_csv_cell": csv_cell, "file_xlsx_cell": sheet_cell, "file_pdf_contains": pdf_contains,
}


def file_clock(folder: Path) -> int:
    """The file system's "now" in ns: the mtime of a file made in ``folder`` just now.

    A run's start is stamped this way, not with time.time(): file times come
    from the kernel's coarse clock, which lags time.time() by up to a tick,
    so a file written just after the start could look older than it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".deskpilot-clock-", dir=folder)
    try:
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
        os.unlink(name)


def existing(checks, base: Path) -> set[str]:
    """The files the file checks name that exist now (noted when a run starts)."""
    found = set()
    for check in checks:
        check = m.parse_check(check)
        if isinstance(check, m._FileCheck):
            path = Path(os.path.normpath(m.resolve(check.file, base)))
            if os.path.lexists(path):
                found.add(str(path))
    return found


def _written_during(check: m._FileCheck, base: Path, since_ns: int | None,
                    existed: set[str] | None) -> Outcome | None:
    """A failed Outcome when the file must be new from this run and is not; None when that holds or is not asked."""
    path = Path(os.path.normpath(m.resolve(check.file, base)))
    wanted = check.modified_during_run
    if wanted is None:  # the default: files that were not there when the run started are its outputs
        wanted = existed is not None and str(path) not in existed
    if not wanted or (check.kind == "file_exists" and not check.exists):  # type: ignore[attr-defined]
        return None
    try:
        info = os.lstat(path)
    except OSError:
        return None  # missing: the check itself says so
    if since_ns is None:
        return False, f"modified_during_run: {path} cannot be checked without a run start", {"path": str(path)}
    if info.st_mtime_ns >= since_ns:
        return None
    age = (since_ns - info.st_mtime_ns) / 1e9
    evidence = {"path": str(path), "modified_during_run": False, "older_by_s": round(age, 3)}
    return False, (f"{path} was not written during this run: last modified {age:.1f} s before it started "
                   f"(an old file)"), evidence


def evaluate(check: m._FileCheck, base: Path, shares: Iterable[str | os.PathLike[str]] = (), *,
             since_ns: int | None = None, existed: set[str] | None = None) -> Outcome:
    """One file check; with ``since_ns`` (the run's start, file_clock) also whether it was written since."""
    stale = _written_during(check, base, since_ns, existed)
    if stale is not None:
        return stale
    path, anchor = locate(check.file, base, shares)
    if check.kind == "file_exists":
        return exists(check, path, anchor)  # type: ignore[arg-type]
    try:
        data = read_file(path, anchor)
    except Unreadable as err:
        return False, str(err), {"path": str(path)}
    if check.kind in READERS:
        return READERS[check.kind](check, path, data)
    try:
        return comparers()[check.kind](check, path, data, base)  # these read a reference file too
    except Unreadable as err:
        return False, str(err), {"path": str(path)}


def comparers() -> dict[str, Callable[[Any, Path, bytes, Path], Outcome]]:
    """The checks that compare a file with a reference (OSWorld's metrics), by kind."""
    from deskpilot.agent.checks import documents, literal, tables

    return {"file_compare_table": tables.compare_table, "file_compare_csv": tables.compare_csv,
            "file_compare_docx": documents.compare_docx, "file_line_spacing": documents.line_spacing,
            "file_docx_tables": documents.docx_tables,
            "file_compare_pdf": documents.compare_pdf, "file_exact_match": literal.exact_match,
            "file_include_exclude": literal.include_exclude}

