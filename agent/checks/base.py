"""What every check is (the base classes), kept apart so the comparison families can build on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    name: str | None = None  # an optional label shown in results

    def describe(self) -> str:
        raise NotImplementedError

    def label(self) -> str:
        return self.name or self.describe()

    def spec(self) -> dict[str, Any]:
        """The object this check was written as (round-trips through parse_check)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | self._required()

    def _required(self) -> dict[str, Any]:
        return {}


def _short(text: Any, limit: int = 60) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class _FileCheck(_Check):
    """A check on a file. ``modified_during_run: true`` also asks that the file was written after the
    run started (an old output left from an earlier run fails); unset, it holds for files that did not
    exist when the run started (runs, evaluations and workflows note which ones at their start)."""

    file: str
    modified_during_run: bool | None = None

    def _required(self) -> dict[str, Any]:
        return {"file": self.file}


def resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p
