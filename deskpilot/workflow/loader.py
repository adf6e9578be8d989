"""Reading a workflow file: YAML -> validated Workflow, every error one line naming its line.

Validation happens before any sandbox starts: the structure (pydantic), the
variables every string uses (defined in ``vars``, on the command line, as a
secret, by an earlier agent step's ``answer``, or as a column of the CSV file
a ``foreach`` reads), and that CSV files named without variables exist.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deskpilot.workflow.spec import STEP_KINDS, AgentStep, Desktop, ForeachStep, LaunchStep, Workflow
from deskpilot.workflow.variables import references, strings_in, substitute
from deskpilot.agent.config.yamllines import LineDict, LineList, line_of, load_yaml, read_user_file
from deskpilot.errors import ConfigError


BUILTIN_VARS = {"cwd", "run_dir"}  # the folder the run started in, and the run folder (absolute)


class WorkflowError(ConfigError):
    """A workflow file that cannot run as written; the message names the file and line."""


def _describe(err: dict[str, Any]) -> str:
    loc_parts = list(err["loc"])
    tags = [i for i, p in enumerate(loc_parts[:-1]) if p in STEP_KINDS and i > 0 and isinstance(loc_parts[i - 1], int)]
    if tags:  # inside a step: name the option only (the line says which step)
        loc_parts = loc_parts[tags[-1] + 1:]
    loc = ".".join(str(p) for p in loc_parts if not isinstance(p, int))
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "step_kind":
        given = err["input"] if isinstance(err["input"], dict) else {}
        return message + _did_you_mean([k for k in given if k != "name"], list(STEP_KINDS))
    if err["type"] == "extra_forbidden":
        key = err["loc"][-1]
        message = f"unknown option {key!r}" + _did_you_mean([key], _options_at(err["loc"], tags))
    elif err["type"] == "missing":
        message = f"{err['loc'][-1]!r} is required"
    return f"{loc}: {message}" if loc else message


def _did_you_mean(given: list[Any], known: list[str]) -> str:
    """' (did you mean 'click_text'?)' for the first misspelt key that is close to a known one (difflib)."""
    for key in (k for k in given if isinstance(k, str) and k not in known):
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]!r} instead of {key!r}?)"
    return ""


def _options_at(loc: tuple[Any, ...], tags: list[int]) -> list[str]:
    """The option names allowed where an unknown one was found: a step kind's, the desktop's, or the file's."""
    if tags:
        return list(STEP_KINDS[loc[tags[-1]]].model_fields)
    if loc and loc[0] == "desktop":
        return list(Desktop.model_fields)
    return list(Workflow.model_fields)


def parse_workflow(text: str, source: str = "workflow", cli_vars: Mapping[str, str] | None = None,
                   base_dir: Path | None = None) -> Workflow:
    """Validate a workflow's text; WorkflowError('FILE line N: ...') on the first problem."""
    try:
        data = load_yaml(text, source)
    except ConfigError as err:
        message = str(err)
        raise WorkflowError(message if message.startswith(source) else f"{source} {message}") from None
    if not isinstance(data, LineDict):
        raise WorkflowError(f"{source}: a workflow is a mapping with at least 'steps:'")
    try:
        flow = Workflow.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        if first["type"] == "missing":  # a misspelt key is both missing and unknown: name the typo
            first = next((e for e in errors if e["type"] == "extra_forbidden"), first)
        line = line_of(data, tuple(first["loc"]), frozenset(STEP_KINDS))
        where = f"{source} line {line}" if line else source
        raise WorkflowError(f"{where}: {_describe(dict(first))}") from None
    _check_variables(flow, data, source, cli_vars or {}, base_dir or Path.cwd())
    return flow


def load_workflow(path: str | Path, cli_vars: Mapping[str, str] | None = None) -> Workflow:
    path = Path(path)
    text = read_user_file(path, "workflow file", WorkflowError)
    return parse_workflow(text, str(path), cli_vars, base_dir=Path.cwd())


def csv_columns(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


def _app_exists(command: str, static: Mapping[str, str], base_dir: Path, complain) -> None:
    """A launch step's program must be installed (on PATH) or be a file, checked before any desktop starts.

    Commands that use a variable known only while running are checked when they run.
    """
    from deskpilot.agent.desk.apps import parse_command
    from deskpilot.errors import UsageError

    try:
        text = substitute(command, static)
    except ConfigError:
        return
    try:
        parse_command(text, cwd=base_dir)
    except UsageError as err:
        complain(f"launch: {err}")


def _check_variables(flow: Workflow, data: LineDict, source: str, cli_vars: Mapping[str, str],
                     base_dir: Path) -> None:
    known = set(flow.vars) | set(cli_vars) | set(flow.secrets) | BUILTIN_VARS

    def complain(node: Any, problem: str) -> None:
        line = getattr(node, "line", None)
        raise WorkflowError(f"{source} line {line}: {problem}" if line else f"{source}: {problem}")

    def need(strings: Iterable[str], names: set[str], node: Any) -> None:
        for text in strings:
            for name in references(text):
                if name not in names:
                    complain(node, f"unknown variable {{{name}}} (define it under vars:, with --var "
                                   f"{name}=..., as an agent step's answer: or as a CSV column)")

    static = {**{k: str(v) for k, v in flow.vars.items()}, **cli_vars, "cwd": str(base_dir)}

    def csv_of(step: ForeachStep) -> Path | None:
        """The CSV file a foreach reads, when its path is known before the run."""
        try:
            text = substitute(substitute(step.foreach, static), static)  # vars may name other vars
        except ConfigError:
            return None  # uses an answer or a secret: known only while running
        path = Path(text)
        return path if path.is_absolute() else base_dir / path

    row_columns: set[str] = set()  # a desktop started per CSV row may use that row's columns
    for step in flow.steps:
        if isinstance(step, ForeachStep) and step.sandbox == "per_row":
            csv_path = csv_of(step)
            if csv_path is not None and csv_path.is_file():
                row_columns |= set(csv_columns(csv_path)) | {"row_number"}
    need(strings_in(flow.desktop.model_dump(mode="json")), known | row_columns, data.get("desktop", data))
    for text in (str(v) for v in flow.vars.values()):
        need([text], known, data.get("vars", data))

    def walk(steps, nodes: LineList, names: set[str]) -> None:
        for step, node in zip(steps, nodes):
            if isinstance(step, ForeachStep):
                need([step.foreach], names, node)
                csv_path = csv_of(step)
                if csv_path is not None:  # else: columns unknown until the run, check nothing inside
                    if not csv_path.is_file():
                        complain(node, f"foreach: CSV file {csv_path} does not exist")
                    walk(step.steps, node["steps"], set(names) | {"row_number"} | set(csv_columns(csv_path)))
                continue
            need(strings_in(step.model_dump(exclude={"name"})), names, node)
            if isinstance(step, LaunchStep):
                _app_exists(step.launch, static, base_dir, lambda problem, node=node: complain(node, problem))
            if isinstance(step, AgentStep) and step.answer:
                names.add(step.answer)

    walk(flow.steps, data["steps"], set(known))
