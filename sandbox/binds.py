"""Host folders made visible inside the sandbox's apps."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator


class Bind(BaseModel):
    """A host folder (or file) shown to the sandboxed apps, read-only unless asked.

    ``target`` is where the apps see it; by default the same path as on the host.
    """

    model_config = ConfigDict(frozen=True)

    host: Path
    target: Path | None = None
    writable: bool = False

    @field_validator("host")
    @classmethod
    def _host_absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("target")
    @classmethod
    def _target_absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"bind target must be an absolute path, got {value}")
        return value

    @property
    def inside(self) -> Path:
        """Where the apps see the folder."""
        return self.target or self.host
