"""Run settings: one nested, typed spec, layered from flags, environment and a TOML file.

`RunSpec` nests the parts the rest of the code already uses as they are:
`desktop` (a DesktopSpec), `backend` (a BackendSpec), `policy` (agent.loop.policy.Policy)
and `loop` (agent.loop.LoopSettings), plus run options and checks. Workflow
files, suites, pytest markers and MCP arguments validate against the same
models.

Every leaf has one name, unique across sections, which is also its flag
(`max_steps` <-> `--max-steps`): a TOML file may write `max-steps = 9` or
`max_steps = 9` at the top (or under `[deskpilot]`), or nest it as
`[policy] max_steps = 9`; the environment may say `DESKPILOT_MAX_STEPS=9`
or `DESKPILOT_POLICY__MAX_STEPS=9`. Precedence, merged by pydantic-settings:
flags > environment > file > defaults. Secrets are named on the command
line but their values come from the environment or the file, never from
the command line (which `ps` shows).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from deskpilot.agent.loop.agent import LoopSettings
from deskpilot.agent.loop.policy import Policy
from deskpilot.agent.config.yamllines import read_user_file
from deskpilot.agent.desk.session import parse_size
from deskpilot.errors import ConfigError

ENV_PREFIX = "DESKPILOT_"
DEFAULT_CONFIG = "deskpilot.toml"


class DesktopSpec(BaseModel):
    """The desktop a run gets: screen, apps (command strings, as --app), shared folders, isolation."""

    model_config = ConfigDict(extra="forbid")
    size: str = "1920x1080"
    apps: list[str] = Field(default_factory=list)
    shares: list[Path] = Field(default_factory=list)
    isolation: Literal["bwrap", "none"] = "bwrap"
    network: bool = False
    maximize: bool = True  # apps' normal windows start maximized
    # isolation "none" with an API key or secrets: the apps run as you and can read them (refuse_unisolated)
    unsafe_no_isolation: bool = False
    vnc: int | None = Field(None, ge=0, le=65535)  # a VNC server for a person: None off, 0 any free port
    vnc_view_only: bool = False
    accessibility: bool = True  # a private AT-SPI bus: locators, element checks, the widget under each click
    office_gtk3: bool = False  # LibreOffice on its GTK3 plugin, which publishes its widgets (looks different)

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> str:
        if isinstance(v, (list, tuple)) and len(v) == 2:
            v = f"{v[0]}x{v[1]}"
        parse_size(v)
        return str(v)

    @property
    def screen(self) -> tuple[int, int]:
        return parse_size(self.size)


def refuse_unisolated(isolation: str, consent: bool, *, api_key: str | None, secrets: Any) -> None:
    """ConfigError for ``isolation="none"`` while an API key or a secret is held, unless the user consented.

    Why: without bubblewrap the apps are ordinary processes of the same user
    (root, often): they can read ``/proc/PID/environ`` of deskpilot (where
    ``DESKPILOT_API_KEY`` and ``--secret`` values live), its memory and every
    file it can. ``none`` protects nothing; it is for debugging on a machine
    with nothing to lose.
    """
    from deskpilot.model_backend.errors import KEY_ENV_VARS

    api_key = api_key or next((os.environ[v] for v in KEY_ENV_VARS if os.environ.get(v)), None)
    if isolation == "none" and not consent and (api_key or secrets):
        held = "an API key" if api_key else "secrets"
        raise ConfigError(f"--isolation none runs the apps as you, able to read {held} from this process: "
                          f"use bwrap, or add --unsafe-no-isolation if you accept that")


class BackendSpec(BaseModel):
    """Where the model is: an OpenAI-compatible server, or recorded replies (`script`)."""

    model_config = ConfigDict(extra="forbid")
    base_url: str | None = None
    model: str = "glm-4.5v"
    api_key: str | None = Field(default=None, repr=False)
    # auto: vLLM's extras, dropped (and remembered) when a server refuses them (transformers serve: 422)
    flavor: Literal["auto", "vllm", "sglang", "zai", "openai", "transformers"] = "auto"
    script: Path | None = None
    dialect: str = "glm-4.5v"  # how the model is prompted and read: glm-4.5v, glm-4.1v, glm-5v
    prompt_template: Path | None = None  # a jinja2 file replacing the built-in prompt wording

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, v: str) -> str:
        from deskpilot.agent.dialects import DIALECT_NAMES

        if v.strip().lower() not in DIALECT_NAMES:
            raise ValueError(f"unknown dialect {v!r}: choose one of {', '.join(DIALECT_NAMES)}")
        return v.strip().lower()


SECTIONS: dict[str, type[BaseModel]] = {
    "desktop": DesktopSpec, "backend": BackendSpec, "policy": Policy, "loop": LoopSettings,
}
_current: ContextVar[dict[str, dict[str, Any]]] = ContextVar("deskpilot_config_sources")


class RunSpec(BaseSettings):
    """Everything one run needs, nested by concern."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)
    desktop: DesktopSpec = Field(default_factory=DesktopSpec)
    backend: BackendSpec = Field(default_factory=BackendSpec)
    policy: Policy = Field(default_factory=Policy)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    checks: list[dict[str, Any]] = Field(default_factory=list)
    out: Path | None = None
    confirm: bool = False
    instructions: str = ""
    output_schema: Path | None = None  # JSON Schema the DONE answer must match (checked, one retry)
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    cache: Path | None = None  # cached-run file (deskpilot.agent.records.cache)

    @model_validator(mode="after")
    def _isolated_secrets(self) -> "RunSpec":
        refuse_unisolated(self.desktop.isolation, self.desktop.unsafe_no_isolation, api_key=self.backend.api_key,
                          secrets=self.secrets)
        return self

    @field_validator("checks")
    @classmethod
    def _checks(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from deskpilot.agent.checks import parse_checks

        parse_checks(v)  # ConfigError with the check's one-line reason
        return v

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings, _Layer(settings_cls, "env"), _Layer(settings_cls, "file"))

    @property
    def screen(self) -> tuple[int, int]:
        return self.desktop.screen

    def make_dialect(self, *, instructions: str | None = None, secrets: dict[str, str] | None = None):
        """The configured dialect with this run's prompt options (template, instructions, secrets, images).

        A workflow's agent steps pass their own ``instructions`` and ``secrets``.
        """
        from deskpilot.agent.dialects import make_dialect

        return make_dialect(self.backend.dialect, extra_instructions=self.instructions if instructions is None
                            else instructions, secrets=self.secrets if secrets is None else secrets,
                            prompt_template=self.backend.prompt_template, **self.loop.image_options())


    def make_backend(self):
        """The model this run talks to: recorded replies (`script`) or an OpenAI-compatible server.

        Every door (run, eval, workflow, MCP) builds its backend here, so they agree on what a setting means.
        """
        from deskpilot.model_backend import ScriptedBackend

        spec = self.backend
        if spec.script is not None:
            if not spec.script.is_file():
                raise ConfigError(f"script file {spec.script} does not exist")
            return ScriptedBackend.from_file(spec.script, keep_requests=False)
        if spec.base_url:
            return self.server_backend()
        raise ConfigError("no model: give --base-url URL (vLLM, SGLang or any OpenAI-compatible server) "
                          "or --script FILE (recorded replies)")

    def server_backend(self):
        """The OpenAI-compatible server of ``backend.base_url`` (eval shares one across attempts whose
        suites bring their own scripted replies)."""
        from deskpilot.model_backend import OpenAICompatibleBackend

        spec = self.backend
        return OpenAICompatibleBackend(spec.base_url, spec.model, api_key=spec.api_key, flavor=spec.flavor,
                                       timeout=self.policy.step_timeout_s)

    def session_spec(self):
        """The desktop part of the spec, with apps parsed and shares made absolute."""
        from deskpilot.agent.desk.session import SessionSpec, VncOption, app_from_command

        desktop = self.desktop
        shares = [str(p.resolve()) for p in desktop.shares]
        vnc = None if desktop.vnc is None else VncOption(port=desktop.vnc, view_only=desktop.vnc_view_only)
        return SessionSpec(size=desktop.screen, isolation=desktop.isolation, network=desktop.network,
                           maximize=desktop.maximize, shares=shares,
                           apps=[app_from_command(a, shares=shares) for a in desktop.apps], vnc=vnc,
                           accessibility=desktop.accessibility, office_gtk3=desktop.office_gtk3)


RunConfig = RunSpec  # the name before the spec was nested


def _flat_names() -> dict[str, tuple[str, ...]]:
    """Each leaf's flat name (and the flag spelling without a unit suffix) -> its path."""
    names: dict[str, tuple[str, ...]] = {}
    for section, model in SECTIONS.items():
        for field in model.model_fields:
            names[field] = (section, field)
            if field.endswith("_s"):
                names.setdefault(field[:-2], (section, field))  # step_timeout -> policy.step_timeout_s
    for field in RunSpec.model_fields:
        if field not in SECTIONS:
            names[field] = (field,)
    return names


FLAT = _flat_names()


def _unknown(key: str, where: str) -> ConfigError:
    known = sorted(set(FLAT) | set(SECTIONS))
    close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
    hint = f" (did you mean {close[0].replace('_', '-')}?)" if close else ""
    return ConfigError(f"{where}: unknown setting {key!r}{hint}")


def nest(flat: dict[str, Any], where: str) -> dict[str, Any]:
    """Flat names and/or section tables -> the spec's nested shape."""
    nested: dict[str, Any] = {}
    for raw_key, value in flat.items():
        key = str(raw_key).replace("-", "_")
        if key in SECTIONS and isinstance(value, dict):
            section = nested.setdefault(key, {})
            for sub, v in value.items():
                sub_key = str(sub).replace("-", "_")
                path = FLAT.get(sub_key)
                if path is None or path[0] != key:
                    raise _unknown(f"{key}.{sub}", where)
                section[path[1]] = v
            continue
        path = FLAT.get(key)
        if path is None:
            raise _unknown(str(raw_key), where)
        if len(path) == 1:
            nested[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1]] = value
    return nested


class _Layer(PydanticBaseSettingsSource):
    """One prepared layer (environment or file), already nested by `load_config`."""

    def __init__(self, settings_cls: type[BaseSettings], layer: str) -> None:
        super().__init__(settings_cls)
        self.layer = layer

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        try:
            return _current.get()[self.layer]
        except LookupError:
            return {}


_LIST_FIELDS = {"apps", "shares", "allow_keys", "deny_keys", "allow_regions", "deny_regions"}
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _leaf_annotation(path: tuple[str, ...]) -> Any:
    model = SECTIONS[path[0]] if len(path) == 2 else RunSpec
    return model.model_fields[path[-1]].annotation


def _env_value(name: str, path: tuple[str, ...], raw: str) -> Any:
    leaf = path[-1]
    if leaf in _LIST_FIELDS:
        return [p for p in raw.split(os.pathsep if leaf == "shares" else ";") if p]
    if _leaf_annotation(path) in (bool, bool | None):
        if raw.lower() not in _BOOL_WORDS:
            raise ConfigError(f"{name} must be true or false, got {raw!r}")
        return _BOOL_WORDS[raw.lower()]
    return raw


def _from_env(env: dict[str, str]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key in ("secrets", "checks"):
            continue
        if "__" in key:  # DESKPILOT_POLICY__MAX_STEPS
            section, _, leaf = key.partition("__")
            path = FLAT.get(leaf)
            if section not in SECTIONS or path is None or path[0] != section:
                continue  # other tools' DESKPILOT_* variables are not ours to reject
        else:
            path = FLAT.get(key)
            if path is None:
                continue
        value = _env_value(name, path, raw)
        if len(path) == 1:
            nested[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1]] = value
    return nested


def _read_file(path: Path) -> dict[str, Any]:
    text = read_user_file(path, "config file")  # a folder or a FIFO (would block forever): one line
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    if "deskpilot" in data:
        if not isinstance(data["deskpilot"], dict):
            raise ConfigError(f"config file {path}: 'deskpilot' must be a table ([deskpilot])")
        data = data["deskpilot"]
    secrets = data.pop("secrets", {})
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        raise ConfigError(f"config file {path}: [secrets] must map names to text values")
    nested = nest(data, f"config file {path}")
    if secrets:
        nested["secrets"] = secrets
    return nested


def _message(err: ValidationError) -> str:
    first = err.errors()[0]
    text = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a rule across settings: its own sentence says what is wrong
        return text
    return f"invalid setting {'.'.join(str(p) for p in first['loc'])}: {text}"


def require_utf8(value: str, what: str) -> str:
    """``value`` if it is UTF-8 text; else one line. Bytes that are not UTF-8 reach Python as lone
    surrogates, which crash later wherever the text is written (the trajectory, the report)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{what} {os.fsencode(value)!r} is not UTF-8 text (another encoding?)") from None
    return value


def load_config(cli: dict[str, Any], *, config_file: Path | None = None, env: dict[str, str] | None = None,
                secret_names: list[str] | tuple[str, ...] = ()) -> RunSpec:
    """Layer the three sources; `cli` holds only what the user gave (flat names, None = not given)."""
    for key, value in cli.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str):
                require_utf8(item, {"apps": "--app", "shares": "--share"}.get(key, "--" + key.replace("_", "-")))
    env = dict(os.environ if env is None else env)
    if config_file is None:
        named = env.get(ENV_PREFIX + "CONFIG")
        config_file = Path(named) if named else (Path(DEFAULT_CONFIG) if Path(DEFAULT_CONFIG).is_file() else None)
    layers = {
        "file": _read_file(Path(config_file)) if config_file is not None else {},
        "env": _from_env(env),
    }
    given = nest({k: v for k, v in cli.items() if v is not None and v != []}, "command line")
    secrets = dict(layers["file"].get("secrets") or {})
    for name in secret_names:
        if name not in env:
            raise ConfigError(f"secret {name} is not set: export {name}=... before running")
        secrets[name] = env[name]
    given["secrets"] = secrets
    token = _current.set(layers)
    try:
        return RunSpec(**given)
    except ValidationError as err:
        raise ConfigError(_message(err)) from None
    except ValueError as err:  # a validator's own one-line message (sizes, regions, keys)
        raise ConfigError(str(err).splitlines()[0]) from None
    finally:
        _current.reset(token)


__all__ = ["BackendSpec", "ConfigError", "DesktopSpec", "RunConfig", "RunSpec", "load_config", "nest", "parse_size",
           "require_utf8"]
