"""YAML with line numbers: mappings and lists remember where each key and item was written.

PyYAML's composer keeps a mark on every node; the constructors below copy
those marks onto the dicts and lists they build, so a validation error about
``steps[2].max_steps`` can say "line 14". Duplicate keys are an error here
(PyYAML would silently keep the last one).
"""

from __future__ import annotations

from typing import Any

import yaml

from deskpilot.agent.records.userfiles import read_user_file
from deskpilot.errors import ConfigError

__all__ = ["LineDict", "LineList", "line_of", "load_yaml", "read_user_file"]


class LineDict(dict):
    """A dict that knows the line of each key (1-based) and of itself."""

    line: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}


class LineList(list):
    """A list that knows the line of each item (1-based) and of itself."""

    line: int = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines: list[int] = []


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            duplicate = key in result
        except TypeError:
            raise ConfigError(f"line {line}: a key must be a plain value, not a list or mapping") from None
        if duplicate:
            raise ConfigError(f"line {line}: {key!r} is given twice")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)


def load_yaml(text: str, source: str = "workflow") -> Any:
    """Parse YAML text into LineDict/LineList/scalars; ConfigError with the line on bad syntax."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: builds no Python objects
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(f"{source}: not valid YAML at {where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None


def line_of(data: Any, loc: tuple[Any, ...], skip: frozenset[str] = frozenset()) -> int | None:
    """The line of the deepest part of ``data`` that ``loc`` (a pydantic error location) reaches.

    Elements of ``loc`` in ``skip`` that are not followed into the data are
    union tags pydantic adds (the step kind) and are passed over.
    """
    line = getattr(data, "line", None) or None
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, LineDict):
            following = loc[i + 1] if i + 1 < len(loc) else None
            if part in skip and following is not None and following in node:
                continue  # a tag, not a key to descend into
            if part not in node:
                break
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        elif isinstance(node, (LineDict, LineList)) or part in skip:
            continue
        else:
            break
    return line
