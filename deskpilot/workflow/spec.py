"""The workflow file format (YAML), as pydantic models.

    name: monthly-totals
    desktop: {size: 1920x1080, apps: ["localc {input}"], shares: ["./work"], network: false}
    vars: {input: work/sales.csv}
    secrets: [SMTP_PASSWORD]             # names of environment variables; values never logged
    steps:
      - wait_for_window: "LibreOffice Calc"
      - agent: "Add a row that sums each column, then save as {output}"
        max_steps: 25
        retries: 1
        answer: total                    # DONE(answer=...) goes into {total}
      - key: ctrl+s
      - click: {role: button, name: OK}  # element steps: the accessibility tree
      - fill: {label: Email, text: "{email}"}
      - wait_for: {role: dialog, name: "Save As"}
      - check: {file: "{output}", xlsx_cell: {sheet: Sheet1, cell: B14, equals: 1234}}
      - foreach: work/names.csv          # each row's columns become variables
        sandbox: per_row                 # or shared (default): the current desktop
        steps: [...]

A step is a mapping with exactly one kind key (launch, agent, click_text,
type, key, wait_for_text, wait_for_window, sleep, check, foreach, and the
element steps click, fill, wait_for) plus that
kind's options; every step may have a ``name``. Strings may use ``{var}``;
``{cwd}`` (where the run started) and ``{run_dir}`` are always defined, as
absolute paths, for typing into an app's file dialog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from deskpilot.agent.config.spec import DesktopSpec
from deskpilot.workflow.variables import NAME_RE, references


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class Desktop(DesktopSpec):
    """The sandbox the steps run in: the run spec's desktop section, whose strings may use {vars}."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    ready_timeout: float = Field(default=60.0, gt=0, le=600)  # seconds for the apps' first window

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> str:
        if isinstance(value, str) and references(value):
            return value  # checked once the variables are known
        return DesktopSpec._size(value)


class _Step(_Strict):
    name: str | None = None

    @property
    def kind(self) -> str:
        return KIND_OF[type(self)]


class LaunchStep(_Step):
    """Start another app (same parsing and sharing rules as --app)."""

    launch: str = Field(min_length=1)
    wait: bool = True
    timeout: float = Field(default=60.0, gt=0, le=600)


class AgentStep(_Step):
    """A task for the model; its DONE(answer=...) can go into a variable."""

    agent: str = Field(min_length=1)
    max_steps: int = Field(default=30, ge=1, le=1000)
    retries: int = Field(default=0, ge=0, le=5)
    answer: str | None = None
    answer_schema: dict[str, Any] | None = None  # JSON Schema the answer must match (the loop asks again once)
    instructions: str | None = None

    @field_validator("answer_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from deskpilot.agent.loop.answers import AnswerSchema

            AnswerSchema(value, source="answer_schema")  # a ConfigError (ValueError) names the problem
        return value

    @field_validator("answer")
    @classmethod
    def _answer_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_RE.match(value):
            raise ValueError(f"answer names a variable (letters, digits, _), got {value!r}")
        return value


class _Region(_Step):
    region: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 in pixels: read only there (faster)

    @field_validator("region")
    @classmethod
    def _box(cls, value):
        if value is not None and (value[2] <= value[0] or value[3] <= value[1] or min(value) < 0):
            raise ValueError(f"a region is [x1, y1, x2, y2] with x1 < x2 and y1 < y2, got {list(value)}")
        return value


class ClickTextStep(_Region):
    """Click the middle of a text OCR finds on screen."""

    click_text: str = Field(min_length=1)
    timeout: float = Field(default=10.0, ge=0, le=600)
    index: int = Field(default=0, ge=0)


class Element(_Strict):
    """An element of the accessibility tree, named as a locator names it (see agent/desk/locator.py)."""

    role: str | None = None
    name: str | None = None
    text: str | None = None
    label: str | None = None
    exact: bool = False
    index: int | None = None  # which of several matches (else several is an error)

    @field_validator("role")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        from deskpilot.perception.a11y import known_role

        if value is not None and not references(value) and not known_role(value):
            raise ValueError(f"unknown role {value!r} (button, textbox, checkbox, menuitem, cell, dialog, ...)")
        return value


class FillTarget(Element):
    """A field to fill: the element (role, name or label) and ``text``, what to type into it."""

    text: str  # type: ignore[assignment]  # here: the value typed, not a text to find


class ClickStep(_Step):
    """Click an element found in the accessibility tree once it is visible and enabled
    (``click: {role: button, name: OK}``), or a point in thousandths (0-999) of the screen's width and
    height (``click: [x, y]``: what `record` writes when the click hit nothing it could name)."""

    click: "Element | tuple[int, int]"
    button: Literal["left", "right", "middle"] = "left"
    double: bool = False
    timeout: float = Field(default=10.0, ge=0, le=600)

    @field_validator("click")
    @classmethod
    def _thousandths(cls, value: "Element | tuple[int, int]") -> "Element | tuple[int, int]":
        if isinstance(value, tuple) and not all(0 <= v <= 999 for v in value):
            raise ValueError(f"click is [x, y] in thousandths of the screen, 0 to 999; got {list(value)}")
        return value


class ScrollStep(_Step):
    """Turn the mouse wheel over a point in thousandths (0-999) of the screen: ``scroll: [x, y]``,
    ``direction`` (down by default) and ``amount`` in wheel notches (what `record` writes for a person's
    scrolling)."""

    scroll: tuple[int, int]
    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int = Field(default=5, ge=1, le=100)

    @field_validator("scroll")
    @classmethod
    def _thousandths(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(0 <= v <= 999 for v in value):
            raise ValueError(f"scroll is [x, y] in thousandths of the screen, 0 to 999; got {list(value)}")
        return value


class FillStep(_Step):
    """Fill a field found in the accessibility tree: focus, select all, type ``text``."""

    fill: FillTarget
    timeout: float = Field(default=10.0, ge=0, le=600)


class WaitForStep(_Step):
    """Wait until an element of the accessibility tree is in ``state`` (visible by default)."""

    wait_for: Element
    state: Literal["visible", "hidden", "attached", "detached", "enabled"] = "visible"
    timeout: float = Field(default=30.0, ge=0, le=600)


class _FocusGuard(_Step):
    """``window: TITLE``: act only if the focused window's title contains TITLE, else fail without typing
    (a dialog that took the focus, "file already exists, replace?", must not get the next row's text)."""

    window: str | None = Field(default=None, min_length=1)


class TypeStep(_FocusGuard):
    type: str


class KeyStep(_FocusGuard):
    key: str = Field(min_length=1)

    @field_validator("key")
    @classmethod
    def _chord(cls, value: str) -> str:
        if not references(value):
            from deskpilot.actions.keys import normalize_key
            from deskpilot.actions.models import split_combo

            for part in split_combo(value):
                normalize_key(part)
        return value


class WaitForTextStep(_Region):
    wait_for_text: str = Field(min_length=1)
    timeout: float = Field(default=30.0, ge=0, le=600)  # 0: read the screen once


class WaitForWindowStep(_Step):
    """Wait until a window whose title contains this text is on screen, then until the screen is quiet.

    Some apps (LibreOffice) map their window and paint it a second later:
    ``quiet`` is how long the screen must not change before the step passes.
    """

    wait_for_window: str = Field(min_length=1)
    timeout: float = Field(default=60.0, gt=0, le=600)
    quiet: float = Field(default=0.5, ge=0, le=60)  # then the screen must stay unchanged this long
    ignore_case: bool = False  # "mousepad" also matches "Mousepad"


class SleepStep(_Step):
    sleep: float = Field(ge=0, le=3600)


class CheckStep(_Step):
    """One check or a list of them (the verification syntax: file, xlsx_cell, pdf_contains, ...)."""

    check: Union[dict[str, Any], list[dict[str, Any]]]

    @field_validator("check")
    @classmethod
    def _known(cls, value):
        from deskpilot.workflow.bridge import validate_check

        for one in value if isinstance(value, list) else [value]:
            validate_check(one)
        return value

    @property
    def checks(self) -> list[dict[str, Any]]:
        return self.check if isinstance(self.check, list) else [self.check]


class ForeachStep(_Step):
    """Run ``steps`` once per row of a CSV file; the row's columns are variables."""

    foreach: str = Field(min_length=1)
    steps: list["Step"] = Field(min_length=1)
    sandbox: Literal["shared", "per_row"] = "shared"


STEP_KINDS: dict[str, type[_Step]] = {
    "launch": LaunchStep, "agent": AgentStep, "click_text": ClickTextStep, "click": ClickStep, "type": TypeStep,
    "key": KeyStep,
    "wait_for_text": WaitForTextStep, "wait_for_window": WaitForWindowStep, "sleep": SleepStep,
    "check": CheckStep, "foreach": ForeachStep, "fill": FillStep, "wait_for": WaitForStep, "scroll": ScrollStep,
}
KIND_OF = {cls: kind for kind, cls in STEP_KINDS.items()}


def kind_of(value: Any) -> str | None:
    """Which step kind a mapping is: the one kind key it has (None if none or several)."""
    if isinstance(value, _Step):
        return value.kind
    if not isinstance(value, dict):
        return None
    kinds = [k for k in value if k in STEP_KINDS]
    return kinds[0] if len(kinds) == 1 else None


if TYPE_CHECKING:  # the union is built from STEP_KINDS at run time; to a type checker every step is a _Step
    Step = _Step
else:
    Step = Annotated[
        Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in STEP_KINDS.items())],  # type: ignore[misc]
        Discriminator(
            kind_of,
            custom_error_type="step_kind",
            custom_error_message="a step is a mapping with exactly one of: " + ", ".join(STEP_KINDS),
        ),
    ]
ForeachStep.model_rebuild()


class Workflow(_Strict):
    name: str = "workflow"
    description: str | None = None
    desktop: Desktop = Field(default_factory=Desktop)
    vars: dict[str, Union[str, int, float, bool]] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not NAME_RE.match(str(name)):
                raise ValueError(f"variable names are letters, digits and _, got {name!r}")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not NAME_RE.match(name):
                raise ValueError(f"a secret is the name of an environment variable, got {name!r}")
        return value
