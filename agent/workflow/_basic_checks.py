"""Stand-in file checks until the verification module (deskpilot.agent.checks) is installed.

The same syntax as that module for the four kinds workflows need most:
``{file, exists}``, ``{file, contains}``, ``{file, xlsx_cell: {sheet, cell,
equals}}``, ``{file, pdf_contains}``. Remove once agent/checks is merged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_KINDS = ("exists", "contains", "xlsx_cell", "pdf_contains")


def validate(obj: Any) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("file"), str):
        raise ValueError("a check needs file: PATH (other kinds need the checks module)")
    kinds = [k for k in _KINDS if k in obj]
    extra = set(obj) - {"file", "name", *_KINDS}
    if len(kinds) > 1 or extra:
        raise ValueError(f"unknown check {sorted(obj)}: use one of file + {', '.join(_KINDS)}")
    if "xlsx_cell" in obj:
        cell = obj["xlsx_cell"]
        if not isinstance(cell, dict) or "cell" not in cell or "equals" not in cell:
            raise ValueError("xlsx_cell needs {cell: B14, equals: VALUE} (sheet optional)")
        if not re.match(r"^[A-Za-z]{1,3}[1-9][0-9]*$", str(cell["cell"])):
            raise ValueError(f"a cell is written like B14, got {cell['cell']!r}")


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(got, (int, float)):
        return abs(float(got) - float(want)) < 1e-9
    return str(got) == str(want)


def run(obj: dict[str, Any], base_dir: Path) -> tuple[bool, str, str]:
    path = Path(obj["file"])
    path = path if path.is_absolute() else base_dir / path
    label = obj.get("name") or f"file {obj['file']}"
    if "exists" in obj or len(obj) == 1 or set(obj) == {"file", "name"}:
        want = bool(obj.get("exists", True))
        return path.exists() == want, label, f"{'exists' if path.exists() else 'missing'}"
    if not path.is_file():
        return False, label, f"{path} does not exist"
    if "contains" in obj:
        text = path.read_text(encoding="utf-8", errors="replace")
        return obj["contains"] in text, label, f"contains {obj['contains']!r}: {obj['contains'] in text}"
    if "pdf_contains" in obj:
        from pypdf import PdfReader

        text = " ".join(page.extract_text() or "" for page in PdfReader(path).pages)
        flat = " ".join(text.split())
        return obj["pdf_contains"] in flat, label, f"PDF text: {flat[:120]!r}"
    cell = obj["xlsx_cell"]
    from openpyxl import load_workbook

    book = load_workbook(path, data_only=True, read_only=True)
    sheet = book[cell["sheet"]] if cell.get("sheet") else book.worksheets[0]
    got = sheet[str(cell["cell"]).upper()].value
    return _same(got, cell["equals"]), label, f"{cell['cell']} is {got!r}, expected {cell['equals']!r}"
