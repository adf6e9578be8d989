"""File checks for what the demonstration saved: the files of the shares that changed while recording.

The shares are read when the recording starts (a hash per file) and again
at a save or at the end; each file that is new or changed becomes a check
that a replay must meet: its whole text (``exact_match``) when it is a short
UTF-8 text, each cell that changed (``xlsx_cell``) in an .xlsx workbook,
else that it exists. Big trees are bounded (``MAX_FILES``,
``MAX_BYTES`` a file) so a share holding a whole project cannot stall the end.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

MAX_FILES = 2000
MAX_BYTES = 50 * 1024 * 1024
MAX_TEXT = 20_000  # characters of a text file written into an exact_match check


def share_files(shares: list[Path]) -> dict[Path, str]:
    """Every regular file under ``shares`` (links not followed) -> a hash of its bytes."""
    out: dict[Path, str] = {}
    for share in shares:
        for root, dirs, files in os.walk(share):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d))]
            for name in files:
                path = Path(root) / name
                if len(out) >= MAX_FILES:
                    return out
                if name.startswith(".~lock.") or path.is_symlink() or not path.is_file():
                    continue  # LibreOffice's lock files come and go with the open document
                try:
                    if path.stat().st_size > MAX_BYTES:
                        continue
                    out[path] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError:
                    continue
    return out


MAX_CELLS = 5000  # cells of a workbook compared
XLSX = (".xlsx", ".xlsm")


def sheet_cells(path: Path) -> dict[tuple[str, str], Any] | None:
    """The values of a workbook's cells ((sheet, "B2") -> value), or None (not a workbook, unreadable)."""
    if path.suffix.lower() not in XLSX:
        return None
    try:
        import openpyxl

        book = openpyxl.load_workbook(path, data_only=True, read_only=True)
    except Exception:  # a half-written file, or not a workbook after all
        return None
    cells: dict[tuple[str, str], Any] = {}
    try:
        for sheet in book.worksheets:
            for row in sheet.iter_rows():
                for cell in row:
                    if getattr(cell, "value", None) is not None and len(cells) < MAX_CELLS:
                        cells[(sheet.title, cell.coordinate)] = cell.value
    finally:
        book.close()
    return cells


def workbooks(files: dict[Path, str]) -> dict[Path, dict[tuple[str, str], Any]]:
    """The cells of every workbook among ``files`` (to compare after a save)."""
    out = {}
    for path in files:
        if (cells := sheet_cells(path)) is not None:
            out[path] = cells
    return out


def changed_files(before: dict[Path, str], after: dict[Path, str]) -> list[Path]:
    return sorted(path for path, digest in after.items() if before.get(path) != digest)


def file_checks(path: Path, folder: Path, cells_before: dict[tuple[str, str], Any] | None = None) -> list[dict[str, Any]]:
    """The checks a replay must meet for ``path``: a workbook's changed cells, else ``file_check``."""
    after = sheet_cells(path)
    if after is not None:
        name = os.path.relpath(path, folder)
        before = cells_before or {}
        first = next(iter(dict.fromkeys(sheet for sheet, _ in after)), None)
        changed = [(sheet, cell, value) for (sheet, cell), value in after.items() if before.get((sheet, cell)) != value]
        checks = [{"file": name, "xlsx_cell": {**({"sheet": sheet} if sheet != first else {}), "cell": cell,
                                               "equals": _braced(value)}}
                  for sheet, cell, value in changed[:50] if isinstance(value, (str, int, float, bool))]
        if checks:
            return checks
    return [file_check(path, folder)]


def _braced(value: Any) -> Any:
    return value.replace("{", "{{").replace("}", "}}") if isinstance(value, str) else value


def file_check(path: Path, folder: Path) -> dict[str, Any]:
    """The check a replay must meet for ``path``, named relative to ``folder`` (where the file is written)."""
    name = os.path.relpath(path, folder)
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return {"file": name, "exists": True}
    if len(text) > MAX_TEXT or "\x00" in text:
        return {"file": name, "exists": True}
    text = text[:-1] if text.endswith("\n") else text
    return {"file": name, "exact_match": text.replace("{", "{{").replace("}", "}}")}  # braces: not variables
