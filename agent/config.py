"""Run settings from the command line, the environment and a TOML file.

Precedence: command line > environment (DESKPILOT_<NAME>) > config file >
defaults. Secrets are named here but their values come from the environment
or the config file, never from the command line (which `ps` shows).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

ENV_PREFIX = "DESKPILOT_"
DEFAULT_CONFIG = "deskpilot.toml"


from deskpilot.errors import ConfigError


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080)."""
    try:
        w, h = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise ConfigError(f"a screen size is WIDTHxHEIGHT, e.g. 1920x1080; got {text!r}") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ConfigError(f"screen size {w}x{h} is out of range (64 to 8192 per side)")
    return w, h


class RunConfig(BaseModel):
    base_url: str | None = None
    model: str = "glm-4.5v"
    api_key: str | None = None
    flavor: Literal["vllm", "sglang", "zai", "openai", "transformers"] = "vllm"
    thinking: bool = True
    max_steps: int = Field(default=30, ge=1, le=10_000)
    size: str = "1920x1080"
    out: Path | None = None
    dry_run: bool = False
    confirm: bool = False
    apps: list[str] = Field(default_factory=list)
    shares: list[Path] = Field(default_factory=list)
    script: Path | None = None
    isolation: Literal["bwrap", "none"] = "bwrap"
    network: bool = False
    maximize: bool = True
    allow_keys: list[str] | None = None
    deny_keys: list[str] = Field(default_factory=list)
    allow_regions: list[str] | None = None
    deny_regions: list[str] = Field(default_factory=list)
    on_violation: Literal["stop", "skip"] = "stop"
    step_timeout: float = Field(default=300.0, gt=0)
    run_timeout: float = Field(default=3600.0, gt=0)
    parse_retries: int = Field(default=2, ge=0, le=20)
    stuck_repeats: int = Field(default=3, ge=2)
    max_tokens: int = Field(default=8192, ge=16)
    temperature: float | None = None
    extra_instructions: str = ""
    secrets: dict[str, str] = Field(default_factory=dict)

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_size(v)
        return v

    @field_validator("allow_regions", "deny_regions")
    @classmethod
    def _regions(cls, v: list[str] | None) -> list[str] | None:
        from deskpilot.agent.policy import Region

        for text in v or []:
            Region.parse(text)
        return v

    @field_validator("allow_keys", "deny_keys")
    @classmethod
    def _keys(cls, v: list[str] | None) -> list[str] | None:
        from deskpilot.actions.keys import normalize_key
        from deskpilot.actions.models import split_combo

        for combo in v or []:
            for key in split_combo(combo):
                normalize_key(key)
        return v

    @property
    def screen(self) -> tuple[int, int]:
        return parse_size(self.size)


_LIST_FIELDS = {"apps", "shares", "allow_keys", "deny_keys", "allow_regions", "deny_regions"}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _from_env(env: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in RunConfig.model_fields.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None or name == "secrets":
            continue
        if name in _LIST_FIELDS:
            values[name] = [p for p in raw.split(os.pathsep if name == "shares" else ";") if p]
        elif field.annotation is bool:
            if raw.lower() not in _BOOL_WORDS:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be true or false, got {raw!r}")
            values[name] = _BOOL_WORDS[raw.lower()]
        else:
            values[name] = raw
    return values


def _from_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as err:
        raise ConfigError(f"config file {path} cannot be read: {err.__class__.__name__}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    data = data.get("deskpilot", data)
    unknown = set(data) - set(RunConfig.model_fields)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return data


def load_config(cli: dict[str, Any], *, config_file: Path | None = None, env: dict[str, str] | None = None,
                secret_names: list[str] = ()) -> RunConfig:
    """Merge the three sources; `cli` holds only what the user actually gave."""
    env = dict(os.environ if env is None else env)
    if config_file is None:
        named = env.get(ENV_PREFIX + "CONFIG")
        config_file = Path(named) if named else (Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).is_file() else None)
    merged: dict[str, Any] = {}
    merged.update(_from_file(config_file))
    merged.update(_from_env(env))
    merged.update({k: v for k, v in cli.items() if v is not None and v != []})
    secrets = dict(merged.get("secrets") or {})
    for name in secret_names:
        if name not in env:
            raise ConfigError(f"secret {name} is not set: export {name}=... before running")
        secrets[name] = env[name]
    merged["secrets"] = secrets
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid setting {where}: {message}") from None
