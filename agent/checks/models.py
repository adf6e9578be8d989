"""The one check syntax: plain objects (from YAML, TOML, JSON or Python) -> typed checks.

Each kind of check is a small pydantic model; which one an object is comes
from its keys (``{file: ..., contains: ...}`` is a FileContains), so the same
text works in a config file, a pytest call, a workflow or an eval suite.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)

from deskpilot.agent.checks.base import _Check, _FileCheck, _short, resolve  # noqa: F401 (resolve: public here)
# the comparison families (OSWorld's metrics): their checks build on base.py
from deskpilot.agent.checks.documents import CompareDocx, ComparePdf, DocxTables, LineSpacing
from deskpilot.agent.checks.literal import ExactMatch, FileIncludeExclude
from deskpilot.agent.checks.tables import CompareCsv, CompareTable
from deskpilot.errors import ConfigError

Box = tuple[int, int, int, int]
Scalar = Union[str, int, float, bool, None]


class FileExists(_FileCheck):
    kind = "file_exists"
    exists: bool = True

    def describe(self) -> str:
        return f"file {self.file} {'exists' if self.exists else 'does not exist'}"

    def _required(self) -> dict[str, Any]:
        return {"file": self.file, "exists": self.exists}


class FileContains(_FileCheck):
    kind = "file_contains"
    contains: str

    def describe(self) -> str:
        return f"file {self.file} contains {_short(self.contains)}"


class FileRegex(_FileCheck):
    kind = "file_regex"
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a valid regular expression: {err}") from None
        return value

    def describe(self) -> str:
        return f"file {self.file} matches /{self.regex}/"


class JsonAt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = ""  # a.b[0].c ; empty: the whole document
    equals: Any


class FileJson(_FileCheck):
    kind = "file_json"
    json_: JsonAt = Field(alias="json")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def describe(self) -> str:
        return f"file {self.file} has {self.json_.path or '(document)'} == {_short(self.json_.equals)}"

    def spec(self) -> dict[str, Any]:
        return ({"file": self.file, "json": self.json_.model_dump(mode="json")} | ({"name": self.name} if self.name else {})
                | ({"modified_during_run": self.modified_during_run} if self.modified_during_run is not None else {}))


class CsvAt(BaseModel):
    """Row and column count from 1, like a spreadsheet (row 1 is the header line, if any).

    ``col`` is a number or a header name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    row: int = Field(ge=1)
    col: Union[int, str]
    equals: Scalar

    @field_validator("col")
    @classmethod
    def _positive(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("col counts from 1")
        return value


class FileCsvCell(_FileCheck):
    kind = "file_csv_cell"
    csv_cell: CsvAt

    def describe(self) -> str:
        c = self.csv_cell
        return f"file {self.file} row {c.row} col {c.col} == {_short(c.equals)}"


_CELL_RE = re.compile(r"^([A-Za-z]{1,3})([1-9][0-9]{0,6})$")


class SheetAt(BaseModel):
    """A cell and what it should hold: its value (``equals``), its formula, or both.

    The value is what the app last calculated and saved; a number typed over
    a formula has the same value, so ``formula: "=SUM(C2:C9)"`` asks for the
    formula itself (compared without spaces, case or ODF's ``[.C2:.C9]`` form).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    sheet: str | None = None  # default: the first sheet
    cell: str
    equals: Scalar = None
    formula: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something(self) -> "SheetAt":
        if "equals" not in self.model_fields_set and self.formula is None:
            raise ValueError("a cell check needs equals: VALUE or formula: \"=...\"")
        return self

    def wants_value(self) -> bool:
        return "equals" in self.model_fields_set

    @field_validator("cell")
    @classmethod
    def _a1(cls, value: str) -> str:
        if not _CELL_RE.match(value):
            raise ValueError(f"a cell is written like B14, got {value!r}")
        return value.upper()


class FileSheetCell(_FileCheck):
    """A spreadsheet cell: .xlsx (openpyxl) or .ods (odfpy)."""

    kind = "file_xlsx_cell"
    xlsx_cell: SheetAt

    def describe(self) -> str:
        c = self.xlsx_cell
        wants = [f"== {_short(c.equals)}"] if c.wants_value() else []
        wants += [f"has formula {c.formula}"] if c.formula is not None else []
        return f"file {self.file} {c.sheet + '!' if c.sheet else ''}{c.cell} {' and '.join(wants)}"

    def spec(self) -> dict[str, Any]:
        cell = self.xlsx_cell.model_dump(mode="json", exclude_none=True)
        if self.xlsx_cell.wants_value():
            cell["equals"] = self.xlsx_cell.equals
        return ({"file": self.file, "xlsx_cell": cell} | ({"name": self.name} if self.name else {})
                | ({"modified_during_run": self.modified_during_run} if self.modified_during_run is not None else {}))


class FilePdfContains(_FileCheck):
    kind = "file_pdf_contains"
    pdf_contains: str

    def describe(self) -> str:
        return f"PDF {self.file} contains {_short(self.pdf_contains)}"


def _check_box(value):
    if value is None:
        return value
    x1, y1, x2, y2 = value
    if x2 <= x1 or y2 <= y1 or min(value) < 0:
        raise ValueError(f"a region is [x1, y1, x2, y2] in pixels with x1 < x2 and y1 < y2, got {list(value)}")
    return value


class _OnScreenText(_Check):
    """Text checks read by OCR, optionally only inside a region [x1, y1, x2, y2]."""

    region: Box | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value):
        return _check_box(value)

    def _where(self) -> str:
        return f" in {list(self.region)}" if self.region else ""


class TextVisible(_OnScreenText):
    """OCR finds the text on the settled screen (case and spacing ignored)."""

    kind = "text_visible"
    text_visible: str = Field(min_length=1)

    def describe(self) -> str:
        return f"text {_short(self.text_visible)} is visible{self._where()}"


class TextAbsent(_OnScreenText):
    kind = "text_absent"
    text_absent: str = Field(min_length=1)

    def describe(self) -> str:
        return f"text {_short(self.text_absent)} is not visible{self._where()}"


class WindowTitle(_Check):
    """A top-level window whose title contains the text (optionally: and has the focus)."""

    kind = "window_title"
    window_title: str = Field(min_length=1)
    focused: bool = False

    def describe(self) -> str:
        return f"a {'focused ' if self.focused else ''}window titled {_short(self.window_title)}"


class ScreenshotMatches(_Check):
    """The settled screen matches a baseline PNG.

    ``tolerance`` is the share of pixels that may differ as scattered noise;
    any connected change bigger than ``max_region`` pixels fails whatever the
    tolerance, so a changed word or a new dialog always fails. ``masks`` are
    boxes left out of the comparison (a clock). A change must persist over
    three frames 0.35 s apart, so a blinking caret does not fail the check.
    """

    kind = "screenshot_matches"
    screenshot_matches: str
    tolerance: float = Field(default=0.0, ge=0, le=1)
    max_region: int = Field(default=10, ge=0)
    threshold: float = Field(default=0.1, gt=0, le=1)  # per-pixel colour distance, as in pixelmatch
    masks: list[Box] = Field(default_factory=list)

    @field_validator("masks")
    @classmethod
    def _boxes(cls, value):
        return [_check_box(b) for b in value]

    def describe(self) -> str:
        return f"screen matches {self.screenshot_matches}"

    def _required(self) -> dict[str, Any]:
        return {"screenshot_matches": self.screenshot_matches}


class Expect(_Check):
    """The model judges a statement about the current screen (yes/no with a reason)."""

    kind = "expect"
    expect: str = Field(min_length=1)

    def describe(self) -> str:
        return f"model agrees: {_short(self.expect, 80)}"


class AnyOf(_Check):
    """One of several checks passes (an OSWorld evaluator's ``conj: or``); every alternative runs."""

    kind = "any_of"
    any_of: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("any_of")
    @classmethod
    def _checks(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for item in value:
            parse_check(item)  # a ConfigError is a ValueError: reported with the field
        return value

    def describe(self) -> str:
        return f"any of {len(self.any_of)} checks"

    def _required(self) -> dict[str, Any]:
        return {"any_of": self.any_of}

class ElementQuery(BaseModel):
    """Which element: a role (ARIA or AT-SPI name) and/or a name, text or label; ``nth`` picks one of several."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: str | None = None
    name: str | None = None
    text: str | None = None
    label: str | None = None
    exact: bool = False
    nth: int | None = None

    @field_validator("role")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        from deskpilot.perception.a11y import known_role

        if value is not None and not known_role(value):
            raise ValueError(f"unknown role {value!r} (button, textbox, checkbox, menuitem, cell, dialog, ...)")
        return value

    def describe(self) -> str:
        parts = [self.role or "element"]
        for key in ("name", "text", "label"):
            if getattr(self, key) is not None:
                parts.append(f"{key}={getattr(self, key)!r}")
        return " ".join(parts) + (f" #{self.nth}" if self.nth is not None else "")


ElementState = Literal["visible", "hidden", "enabled", "disabled", "focused", "checked", "unchecked", "selected"]


class ElementCheck(_Check):
    """An element of the accessibility tree: its state, text, value, or how many match.

    ``{element: {role: button, name: Save}, state: enabled}``; ``text`` and
    ``value`` compare whole (spacing folded); ``count`` counts matches (0: absent).
    Without any of them the element must be there.
    """

    kind = "element"
    element: ElementQuery
    state: ElementState | None = None
    text: str | None = None
    value: Scalar = None
    count: int | None = Field(default=None, ge=0)

    def describe(self) -> str:
        what = self.element.describe()
        if self.count is not None:
            return f"{self.count} x {what}"
        tail = [f"is {self.state}"] if self.state else []
        tail += [f"has text {_short(self.text)}"] if self.text is not None else []
        tail += [f"has value {_short(self.value)}"] if self.value is not None else []
        return f"{what} " + (" and ".join(tail) or "is there")

    def _required(self) -> dict[str, Any]:
        return {"element": self.element.model_dump(exclude_none=True, exclude_defaults=True)}


_FILE_KINDS: dict[str, type[_Check]] = {
    "exists": FileExists, "contains": FileContains, "regex": FileRegex, "json": FileJson,
    "csv_cell": FileCsvCell, "xlsx_cell": FileSheetCell, "pdf_contains": FilePdfContains,
    "compare_table": CompareTable, "compare_csv": CompareCsv, "compare_docx": CompareDocx,
    "line_spacing": LineSpacing, "docx_tables": DocxTables, "compare_pdf": ComparePdf, "exact_match": ExactMatch,
    "include_exclude": FileIncludeExclude,
}
_SCREEN_KINDS: dict[str, type[_Check]] = {
    "text_visible": TextVisible, "text_absent": TextAbsent, "window_title": WindowTitle,
    "screenshot_matches": ScreenshotMatches, "expect": Expect, "any_of": AnyOf, "element": ElementCheck,
}
ALL_KINDS: tuple[type[_Check], ...] = (*_FILE_KINDS.values(), *_SCREEN_KINDS.values())


def kind_of(obj: Any) -> str:
    """Which check an object is, from its keys; ConfigError (one line) if none or several."""
    if isinstance(obj, _Check):
        return obj.kind
    if not isinstance(obj, dict):
        raise ConfigError(f"a check is an object like {{text_visible: 'Saved'}}, got {_short(obj)}")
    if "file" in obj:
        found = [k for k in _FILE_KINDS if k in obj]
        if len(found) != 1:
            what = "none" if not found else " and ".join(found)
            raise ConfigError(f"file check on {obj['file']!r} needs exactly one of "
                              f"{', '.join(_FILE_KINDS)} (got {what})")
        return _FILE_KINDS[found[0]].kind
    found = [k for k in _SCREEN_KINDS if k in obj]
    if len(found) != 1:
        what = "none of them" if not found else " and ".join(found)
        raise ConfigError(f"a check needs exactly one of file, {', '.join(_SCREEN_KINDS)} (got {what}): "
                          f"{_short(obj, 80)}")
    return _SCREEN_KINDS[found[0]].kind


def _tagged(obj: Any) -> str | None:
    try:
        return kind_of(obj)
    except ConfigError:
        return None


# For other pydantic models that hold checks (workflow steps, eval suites).
Check = Annotated[
    Union[
        Annotated[FileExists, Tag("file_exists")], Annotated[FileContains, Tag("file_contains")],
        Annotated[FileRegex, Tag("file_regex")], Annotated[FileJson, Tag("file_json")],
        Annotated[FileCsvCell, Tag("file_csv_cell")], Annotated[FileSheetCell, Tag("file_xlsx_cell")],
        Annotated[FilePdfContains, Tag("file_pdf_contains")], Annotated[TextVisible, Tag("text_visible")],
        Annotated[TextAbsent, Tag("text_absent")], Annotated[WindowTitle, Tag("window_title")],
        Annotated[ScreenshotMatches, Tag("screenshot_matches")], Annotated[Expect, Tag("expect")],
        Annotated[CompareTable, Tag("file_compare_table")], Annotated[CompareCsv, Tag("file_compare_csv")],
        Annotated[CompareDocx, Tag("file_compare_docx")], Annotated[LineSpacing, Tag("file_line_spacing")],
        Annotated[ComparePdf, Tag("file_compare_pdf")], Annotated[DocxTables, Tag("file_docx_tables")], Annotated[ExactMatch, Tag("file_exact_match")],
        Annotated[FileIncludeExclude, Tag("file_include_exclude")], Annotated[AnyOf, Tag("any_of")],

        Annotated[ElementCheck, Tag("element")],
    ],
    Discriminator(_tagged),
]
_BY_KIND = {k.kind: k for k in ALL_KINDS}


def parse_check(obj: Any) -> _Check:
    """A plain object -> its typed check; ConfigError with a one-line reason if it is not one."""
    if isinstance(obj, _Check):
        return obj
    model = _BY_KIND[kind_of(obj)]
    try:
        return model.model_validate(obj)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "check"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown key for a {model.kind} check"
        raise ConfigError(f"check {_short(obj, 70)}: {where}: {message}") from None


def parse_checks(objs: Any) -> list[_Check]:
    """A list of check objects (or None) -> typed checks."""
    if objs is None:
        return []
    if isinstance(objs, (dict, _Check)):
        objs = [objs]
    if not isinstance(objs, list):
        raise ConfigError(f"checks are a list of objects, got {_short(objs)}")
    return [parse_check(o) for o in objs]


def expect_file_flag(text: str) -> _Check:
    """`PATH:contains:TEXT`, `PATH:regex:RE`, `PATH:exists`, `PATH:pdf_contains:TEXT` -> a file check."""
    for op in ("contains", "regex", "pdf_contains"):
        marker = f":{op}:"
        if marker in text:
            path, value = text.split(marker, 1)
            if path:
                return parse_check({"file": path, op: value})
    if text.endswith(":exists") and len(text) > len(":exists"):
        return parse_check({"file": text[: -len(":exists")], "exists": True})
    raise ConfigError(f"--expect-file is PATH:contains:TEXT, PATH:regex:RE, PATH:pdf_contains:TEXT "
                      f"or PATH:exists; got {text!r}")
