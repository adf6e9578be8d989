"""Task suites: a YAML or JSON file of tasks, each with its desktop, limits, tags, replies and checks.

Validated with pydantic before any sandbox starts; a mistake is reported as
one line naming the file, the line and the field (``suite.yaml:14: tasks[2]
.desktop.size: ...``). Relative paths (app arguments, shares, check files,
script files) resolve against the suite file's folder, so a suite runs the
same from any working directory.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Annotated, Any

from deskpilot.agent.config.spec import DesktopSpec
from deskpilot.eval.checks import validate_check
from deskpilot.eval.osworld.plan import Plan
from deskpilot.agent.config.yamllines import line_of, load_yaml, read_user_file
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from deskpilot.errors import ConfigError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
PATH_KEYS = ("file", "screenshot_matches")  # check fields that name files


def _check(value: dict[str, Any]) -> dict[str, Any]:
    validate_check(value)
    return value


Check = Annotated[dict[str, Any], AfterValidator(_check)]


def _desktop() -> DesktopSpec:
    return DesktopSpec(size="1280x800")


class Ready(BaseModel):
    """Wait before the first step: for a window with this title, then for the screen to be still.

    For apps that show a splash or a blank window first (LibreOffice): the
    desk counts as ready once any window is up and still.
    """

    model_config = ConfigDict(extra="forbid")

    window: str = Field(min_length=1)
    quiet: float = Field(default=1.0, ge=0, le=60)  # seconds without a screen change
    timeout: float = Field(default=60.0, gt=0, le=600)


class SuiteTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    task: str = Field(min_length=1)
    desktop: DesktopSpec = Field(default_factory=_desktop)  # the run spec's desktop section
    max_steps: int = Field(default=15, ge=1, le=1000)
    tags: list[str] = Field(default_factory=list)
    ready: Ready | None = None
    script: list[str] | str | None = None  # replies instead of a model, or a JSON file of them
    checks: list[Check] = Field(default_factory=list)
    osworld: Plan | None = None  # an OSWorld task's set-up, postconfig and skip reason (deskpilot.eval.osworld)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("an id is 1-80 letters, digits, '.', '_' or '-' (it names the run folder)")
        return v

    def replies(self) -> list[str] | None:
        """The scripted replies (reading the script file if one is named)."""
        if self.script is None or isinstance(self.script, list):
            return self.script
        try:
            data = json.loads(Path(self.script).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"task {self.id}: script {self.script} cannot be read: {err}") from None
        if not isinstance(data, list) or not all(isinstance(r, str) for r in data):
            raise ConfigError(f"task {self.id}: script {self.script} must be a JSON list of reply strings")
        return data


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    tasks: list[SuiteTask] = Field(min_length=1)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        seen: set[str] = set()
        for task in self.tasks:
            if task.id in seen:
                raise ValueError(f"task id {task.id!r} is used twice")
            seen.add(task.id)
        return self

    def by_id(self) -> dict[str, SuiteTask]:
        return {t.id: t for t in self.tasks}


# -- loading ---------------------------------------------------------------------

def _where(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "suite"


def _read(path: Path) -> Any:
    """The suite's data; mappings and lists know their lines (agent.config.yamllines), JSON too."""
    text = read_user_file(path, "suite file")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None
        try:
            return load_yaml(text, str(path))  # the same data, with lines
        except ConfigError:
            return data  # JSON that YAML cannot read (tabs): no line numbers, still valid
    try:
        return load_yaml(text, str(path))
    except ConfigError as err:  # "FILE: not valid YAML at line N, column C: ..." -> "FILE:N: not valid YAML: ..."
        found = re.search(r"at line (\d+), column \d+: (.*)$", str(err))
        if found is not None:
            raise ConfigError(f"{path}:{found.group(1)}: not valid YAML: {found.group(2)}") from None
        found = re.match(r"line (\d+): (.*)$", str(err))  # a key given twice
        raise ConfigError(f"{path}:{found.group(1)}: {found.group(2)}" if found else f"{path}: {err}") from None


def _at(path: Path, data: Any, loc: tuple) -> str:
    """'FILE:LINE' for a field path (as deep as the data reaches), 'FILE' without lines."""
    line = line_of(data, loc)
    return f"{path}:{line}" if line else str(path)


def load_suite(path: str | Path) -> Suite:
    """Read, validate and resolve a suite file; one-line ConfigError with the line on any mistake."""
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a suite is a mapping with a 'tasks' list")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        raise ConfigError(f"{_at(path, data, loc)}: {_where(loc)}: {message}") from None
    return _resolve(suite, path.resolve().parent, data, path)


def _resolve_arg(arg: str, base: Path) -> str:
    """A relative path argument of an app command, made absolute against the suite's folder."""
    if arg.startswith("-") or Path(arg).is_absolute():
        return arg
    candidate = base / arg
    if "/" in arg or candidate.exists():
        return str(candidate)
    return arg


def _resolve(suite: Suite, base: Path, data: Any, path: Path) -> Suite:
    from deskpilot.agent.desk.session import app_from_command

    for n, task in enumerate(suite.tasks):
        d = task.desktop
        d.shares = [(base / s).resolve() for s in d.shares]
        apps = []
        for a, command in enumerate(d.apps):
            argv = shlex.split(command)
            argv = argv[:1] + [_resolve_arg(x, base) for x in argv[1:]]
            if "/" in argv[0] and not Path(argv[0]).is_absolute():
                argv[0] = str(base / argv[0])
            apps.append(shlex.join(argv))
            try:
                app_from_command(apps[-1])  # the program exists, now rather than in the middle of a run
            except ConfigError:
                raise
            except Exception as err:  # UsageError: not installed / does not exist
                where = _at(path, data, ("tasks", n, "desktop", "apps", a))
                raise ConfigError(f"{where}: tasks[{n}].desktop.apps[{a}]: {err}") from None
        d.apps = apps
        for s, share in enumerate(d.shares):
            if not share.is_dir():
                raise ConfigError(f"{_at(path, data, ('tasks', n, 'desktop', 'shares', s))}: "
                                  f"tasks[{n}].desktop.shares[{s}]: {share} is not a folder")
        if isinstance(task.script, str):
            task.script = str(base / task.script)
            if not Path(task.script).is_file():
                raise ConfigError(f"{_at(path, data, ('tasks', n, 'script'))}: tasks[{n}].script: "
                                  f"{task.script} does not exist")
        task.checks = [{k: (str(base / v) if k in PATH_KEYS and isinstance(v, str) else v) for k, v in c.items()}
                       for c in task.checks]
    suite.path = path.resolve()
    if not suite.name:
        suite.name = path.stem
    return suite
