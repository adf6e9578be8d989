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

import yaml
from deskpilot.agent.config import DesktopSpec
from deskpilot.agent.eval.checks import validate_check
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

def _positions(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Field path -> 1-based line, for every key and list item of a composed YAML document."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (getattr(key, "value", None),)
            out[sub] = key.start_mark.line + 1
            _positions(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _positions(item, path + (i,), out)
    return out


def _where(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "suite"


def _read(path: Path) -> tuple[Any, dict[tuple, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"suite file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"suite file {path} cannot be read: {err.__class__.__name__}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None  # JSON that PyYAML cannot read (tabs): no line numbers, still valid
        return data, (_positions(node) if node is not None else {})
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    return data, (_positions(node) if node is not None else {})


def load_suite(path: str | Path) -> Suite:
    """Read, validate and resolve a suite file; one-line ConfigError with the line on any mistake."""
    path = Path(path)
    data, lines = _read(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a suite is a mapping with a 'tasks' list")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {_where(loc)}: {message}") from None
    return _resolve(suite, path.resolve().parent, lines, path)


def _resolve_arg(arg: str, base: Path) -> str:
    """A relative path argument of an app command, made absolute against the suite's folder."""
    if arg.startswith("-") or Path(arg).is_absolute():
        return arg
    candidate = base / arg
    if "/" in arg or candidate.exists():
        return str(candidate)
    return arg


def _resolve(suite: Suite, base: Path, lines: dict, path: Path) -> Suite:
    from deskpilot.agent.session import app_from_command

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
                line = lines.get(("tasks", n, "desktop", "apps", a))
                raise ConfigError(f"{path}{f':{line}' if line else ''}: tasks[{n}].desktop.apps[{a}]: {err}") from None
        d.apps = apps
        for s, share in enumerate(d.shares):
            if not share.is_dir():
                line = lines.get(("tasks", n, "desktop", "shares", s))
                raise ConfigError(f"{path}{f':{line}' if line else ''}: tasks[{n}].desktop.shares[{s}]: "
                                  f"{share} is not a folder")
        if isinstance(task.script, str):
            task.script = str(base / task.script)
            if not Path(task.script).is_file():
                line = lines.get(("tasks", n, "script"))
                raise ConfigError(f"{path}{f':{line}' if line else ''}: tasks[{n}].script: {task.script} does not exist")
        task.checks = [{k: (str(base / v) if k in PATH_KEYS and isinstance(v, str) else v) for k, v in c.items()}
                       for c in task.checks]
    suite.path = path.resolve()
    if not suite.name:
        suite.name = path.stem
    return suite
