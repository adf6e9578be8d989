"""Spreadsheet and CSV comparisons: OSWorld's ``compare_table`` and ``compare_csv`` as file checks.

    {file: out.xlsx, compare_table: {expected: gold.xlsx, rules: [{type: sheet_data, sheet_idx0: 0, sheet_idx1: EI0}]}}
    {file: out.xlsx, compare_table: {rules: [{type: check_cell, sheet_idx: 0, coordinate: B3,
                                              props: {value: {method: eq, ref: 42}}}]}}
    {file: out.csv, compare_csv: {expected: gold.csv, strict: true, ignore_case: false}}

The rules follow OSWorld's evaluator (desktop_env/evaluators/metrics/table.py),
re-implemented on openpyxl alone: a sheet is named like OSWorld names it (an
int or ``RI0`` is the result's sheet by position, ``RNName`` by name, ``EI0``
and ``ENName`` the expected file's), values are the ones the app last saved
(cached formula results), rules run in order and the first that fails fails
the check. ``freeze`` compares frozen panes, ``zoom`` checks a sheet's zoom with a value rule,
``sheet_print`` compares the sheets' CSV exports next to each workbook
(``BOOK-SHEET.csv``, as OSWorld's postconfig makes them). ``sheet_data`` compares the grids of values with numbers rounded
to ``precision`` decimals (default 4); unlike OSWorld's pandas reading, 1 and
1.0 are the same number and trailing empty rows and columns are ignored.
"""

from __future__ import annotations

import io
import operator
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deskpilot.agent.checks import base as m
from deskpilot.errors import UsageError

Outcome = tuple[bool, str, dict[str, Any]]

SHEET_RULES = ("sheet_name", "sheet_data", "sheet_print", "check_cell", "freeze", "zoom")  # what this module implements
CELL_PROPS = ("value", "number_format", "font_name", "font_bold", "font_italic", "font_size", "font_color",
              "fill_type", "bgcolor", "fgcolor")
VALUE_METHODS = ("eq", "ne", "lt", "le", "gt", "ge", "approx:", "re", "range.", "str_list_eq", "str_set_eq")


class TableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    expected: str | None = None  # the reference workbook (rules that name EI/EN sheets need it)
    rules: list[dict[str, Any]] = Field(min_length=1)


class CompareTable(m._FileCheck):
    """The workbook passes every rule (OSWorld's compare_table)."""

    kind = "file_compare_table"
    compare_table: TableSpec

    def describe(self) -> str:
        kinds = ", ".join(str(r.get("type")) for r in self.compare_table.rules)
        return f"workbook {self.file} passes {kinds}"


class CsvSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    expected: str
    strict: bool = True  # False: spaces around each line do not count
    ignore_case: bool = False


class CompareCsv(m._FileCheck):
    """The file's lines equal the reference's (OSWorld's compare_csv)."""

    kind = "file_compare_csv"
    compare_csv: CsvSpec

    def describe(self) -> str:
        return f"{self.file} has the lines of {Path(self.compare_csv.expected).name}"


# -- reading -------------------------------------------------------------------------

def _book(data: bytes, name: str):
    try:
        import openpyxl
    except ImportError:
        raise UsageError("table checks need the [office] extra: pip install 'deskpilot[office]'") from None
    try:
        return openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except Exception as err:  # openpyxl raises many kinds for a file that is not a workbook
        raise UsageError(f"cannot read {name} as a workbook ({type(err).__name__}: {err})") from None


def _sheet(index: Any, result, expected):
    """(workbook, sheet) for an OSWorld sheet index; UsageError naming what is missing."""
    key: int | str
    if isinstance(index, int):
        book, which, key = result, "result", index
    elif isinstance(index, str) and index[:2] in ("RI", "RN", "EI", "EN"):
        book, which = (result, "result") if index[0] == "R" else (expected, "expected")
        key = int(index[2:]) if index[1] == "I" and index[2:].isdigit() else index[2:]
        if index[1] == "I" and not isinstance(key, int):
            raise UsageError(f"bad sheet index {index!r}")
    else:
        raise UsageError(f"bad sheet index {index!r}: an int, or RI0 / RNName / EI0 / ENName")
    if book is None:
        raise UsageError(f"sheet {index!r} names the expected workbook, and the check has none")
    names = book.sheetnames
    if isinstance(key, int):
        if not 0 <= key < len(names):
            raise UsageError(f"the {which} workbook has no sheet number {key} (sheets: {names})")
        return book[names[key]]
    if key not in names:
        raise UsageError(f"the {which} workbook has no sheet {key!r} (sheets: {names})")
    return book[key]


def _plain(value: Any) -> Any:
    """A cell value as OSWorld reads it from the file: numbers (dates too) are floats."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (datetime, date, time)):
        from openpyxl.utils.datetime import to_excel

        return float(to_excel(value))
    return value


def _grid(ws, precision: int) -> list[list[Any]]:
    rows = []
    for row in ws.iter_rows(values_only=True):
        cells = [_plain(v) for v in row]
        rows.append([round(v, precision) if isinstance(v, float) else (None if v == "" else v) for v in cells])
    while rows and all(v is None for v in rows[-1]):
        rows.pop()
    width = max((max((i + 1 for i, v in enumerate(r) if v is not None), default=0) for r in rows), default=0)
    return [r[:width] + [None] * (width - len(r[:width])) for r in rows]


def _first_difference(a: list[list[Any]], b: list[list[Any]]) -> str:
    from openpyxl.utils import get_column_letter

    if len(a) != len(b) or (a and len(a[0]) != len(b[0])):
        return f"sizes differ: {len(a)}x{len(a[0]) if a else 0} vs {len(b)}x{len(b[0]) if b else 0}"
    for r, (ra, rb) in enumerate(zip(a, b), 1):
        for c, (va, vb) in enumerate(zip(ra, rb), 1):
            if va != vb:
                return f"{get_column_letter(c)}{r} is {va!r}, expected {vb!r}"
    return ""


def _style(prop: str, cell) -> Any:
    if prop == "number_format":
        return cell.number_format if cell.value is not None and cell.data_type == "n" else None
    if prop.startswith("font_"):
        if cell.value is None:
            return None
        font = cell.font
        return {"font_name": font.name, "font_bold": font.bold, "font_italic": font.italic, "font_size": font.size,
                "font_color": getattr(font.color, "rgb", None)}[prop]
    fill = cell.fill
    return {"fill_type": getattr(fill, "tagname", None), "bgcolor": getattr(fill.bgColor, "rgb", None),
            "fgcolor": getattr(fill.fgColor, "rgb", None)}[prop]


def matches(value: Any, rule: dict[str, Any]) -> bool:
    """OSWorld's value rule {method, ref}: eq/ne/lt/le/gt/ge, approx:T, re[.FLAG...], range.XY, str_list_eq/str_set_eq."""
    method = str(rule.get("method", ""))
    ref: Any = rule.get("ref")
    if method.startswith("re"):
        flags = 0
        for name in method.split(".")[1:]:
            flags |= getattr(re, name)
        return isinstance(value, str) and re.search(ref, value, flags) is not None
    if method in ("eq", "ne", "lt", "le", "gt", "ge"):
        try:
            return bool(getattr(operator, method)(value, ref))
        except TypeError:  # None < 3
            return False
    if method.startswith("approx:"):
        try:
            return abs(float(value) - float(ref)) <= float(method.split(":", 1)[1])
        except (TypeError, ValueError):
            return False
    if method.startswith("range.") and len(method) == 8:  # range.te [0, 2]: 0 < x <= 2
        low, high = ("lt" if method[6] == "t" else "le"), ("lt" if method[7] == "t" else "le")
        try:
            return getattr(operator, low)(ref[0], value) and getattr(operator, high)(value, ref[1])
        except TypeError:
            return False
    if method in ("str_list_eq", "str_set_eq"):
        kind = list if method == "str_list_eq" else set
        return isinstance(value, str) and kind(value.strip("\"'").split(",")) == kind(ref)
    raise UsageError(f"value rule method {method!r} is not supported (supported: {', '.join(VALUE_METHODS)})")


def _printed(index: Any, books: dict[str, Any], paths: dict[str, Path | None]) -> list[str]:
    """A sheet as printed: the CSV export next to its workbook (``BOOK-SHEET.csv``, made by the task's
    postconfig running ``libreoffice --convert-to csv``), lines stripped, trailing empty lines dropped."""
    from deskpilot.agent.checks.reading import read_file

    ws = _sheet(index, books["result"], books["expected"])
    which = "expected" if isinstance(index, str) and index.startswith("E") else "result"
    book = paths[which]
    if book is None:
        raise UsageError(f"sheet {index!r} names the expected workbook, and the check has none")
    csv = book.with_name(f"{book.stem}-{ws.title}.csv")
    lines = [line.strip() for line in read_file(csv, csv.parent).decode("utf-8", errors="replace").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _rule(rule: dict[str, Any], result, expected, paths: dict[str, Path | None]) -> tuple[bool, str]:
    kind = rule.get("type")
    if kind == "sheet_print":
        books = {"result": result, "expected": expected}
        got, want = _printed(rule["sheet_idx0"], books, paths), _printed(rule["sheet_idx1"], books, paths)
        if rule.get("ignore_case"):
            got, want = [x.lower() for x in got], [x.lower() for x in want]
        if got == want:
            return True, f"sheet {rule['sheet_idx0']} prints as sheet {rule['sheet_idx1']} ({len(got)} lines)"
        at = next((n for n, (x, y) in enumerate(zip(got, want), 1) if x != y), min(len(got), len(want)) + 1)
        return False, f"printed line {at} differs: {(got[at - 1] if at <= len(got) else '')[:60]!r} vs " \
                      f"{(want[at - 1] if at <= len(want) else '')[:60]!r}"
    if kind == "freeze":
        a = _sheet(rule["sheet_idx0"], result, expected).freeze_panes
        b = _sheet(rule["sheet_idx1"], result, expected).freeze_panes
        return a == b, f"frozen at {a} vs {b}"
    if kind == "zoom":
        zoom = _sheet(rule["sheet_idx"], result, expected).sheet_view.zoomScale or 100.0
        return matches(zoom, rule), f"zoom {zoom:g}% {rule.get('method')} {rule.get('ref')!r}"
    if kind == "sheet_name":
        names = result.sheetnames, (expected.sheetnames if expected is not None else None)
        return names[0] == names[1], f"sheet names {names[0]} vs {names[1]}"
    if kind == "sheet_data":
        precision = int(rule.get("precision", 4))
        a = _grid(_sheet(rule["sheet_idx0"], result, expected), precision)
        b = _grid(_sheet(rule["sheet_idx1"], result, expected), precision)
        diff = _first_difference(a, b)
        return not diff, (f"sheet {rule['sheet_idx0']} == sheet {rule['sheet_idx1']}" if not diff
                          else f"sheet {rule['sheet_idx0']} vs {rule['sheet_idx1']}: {diff}")
    if kind == "check_cell":
        ws = _sheet(rule["sheet_idx"], result, expected)
        cell = ws[rule["coordinate"]]
        for prop, want in rule["props"].items():
            if prop not in CELL_PROPS:
                raise UsageError(f"cell property {prop!r} is not supported (supported: {', '.join(CELL_PROPS)})")
            value = _plain(cell.value) if prop == "value" else _style(prop, cell)
            if not matches(value, want):
                return False, f"{rule['coordinate']} {prop} is {value!r}: not {want.get('method')} {want.get('ref')!r}"
        return True, f"{rule['coordinate']} has {', '.join(rule['props'])} as required"
    raise UsageError(f"compare_table rule {kind!r} is not supported (supported: {', '.join(SHEET_RULES)})")


def compare_table(check: CompareTable, path: Path, data: bytes, base: Path) -> Outcome:
    from deskpilot.agent.checks.reading import Unreadable, locate, read_file

    spec = check.compare_table
    evidence: dict[str, Any] = {"path": str(path)}
    result = _book(data, path.name)
    expected = None
    paths: dict[str, Path | None] = {"result": path, "expected": None}
    if spec.expected:
        gold, anchor = locate(spec.expected, base)
        evidence["expected"] = str(gold)
        expected = _book(read_file(gold, anchor), gold.name)
        paths["expected"] = gold
    seen = []
    for n, rule in enumerate(spec.rules):
        try:
            passed, what = _rule(rule, result, expected, paths)
        except Unreadable as err:  # a sheet's CSV export is missing
            passed, what = False, str(err)
        seen.append(what)
        if not passed:
            return False, f"rule {n + 1} ({rule.get('type')}): {what}", dict(evidence, rules=seen)
    return True, "; ".join(seen), dict(evidence, rules=seen)


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8-sig", errors="replace").splitlines()


def compare_csv(check: CompareCsv, path: Path, data: bytes, base: Path) -> Outcome:
    from deskpilot.agent.checks.reading import locate, read_file

    spec = check.compare_csv
    gold, anchor = locate(spec.expected, base)
    got, want = _lines(data), _lines(read_file(gold, anchor))
    if not spec.strict:
        got, want = [s.strip() for s in got], [s.strip() for s in want]
    if spec.ignore_case:
        got, want = [s.lower() for s in got], [s.lower() for s in want]
    evidence = {"path": str(path), "expected": str(gold), "lines": len(got), "expected_lines": len(want)}
    if got == want:
        return True, f"{len(got)} lines equal", evidence
    for n, (a, b) in enumerate(zip(got, want), 1):
        if a != b:
            return False, f"line {n} is {a[:80]!r}, expected {b[:80]!r}", evidence
    return False, f"{len(got)} lines, expected {len(want)}", evidence
