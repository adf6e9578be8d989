"""deskpilot: a vision-language model operates a sandboxed virtual desktop.

The public API lives here; the subpackages (agent, sandbox, perception,
actions, model_backend) each do one job. Names load on first use so that
`import deskpilot` and `deskpilot --help` stay fast.
"""

from __future__ import annotations

import importlib
import os as _os

__version__ = "0.3.0"

# In a source checkout the subpackages sit beside this folder, not in it.
_here = _os.path.dirname(__file__)
if not _os.path.isdir(_os.path.join(_here, "agent")):
    _root = _os.path.dirname(_here)
    if _os.path.isfile(_os.path.join(_root, "agent", "__init__.py")):
        __path__.append(_root)  # type: ignore[name-defined]

from deskpilot.agent import _EXPORTS as _AGENT_EXPORTS  # noqa: E402  (after the path above; loads nothing more)

_EXPORTS: dict[str, str] = {
    # a desktop to work on; the agent, its results and what comes after a run (deskpilot.agent's names)
    "Sandbox": "deskpilot.agent.desk.session",
    "Session": "deskpilot.agent.desk.session",
    "expect": "deskpilot.agent.desk.locator",  # expect(locator).to_have_text(...), Playwright-style
    "Locator": "deskpilot.agent.desk.locator",
    **_AGENT_EXPORTS,
    # models
    "Backend": "deskpilot.model_backend",
    "OpenAICompatibleBackend": "deskpilot.model_backend",
    "ScriptedBackend": "deskpilot.model_backend",
    "TransformersBackend": "deskpilot.model_backend",
    # typed actions and the parser of model replies
    "Action": "deskpilot.actions",
    "Click": "deskpilot.actions",
    "DoubleClick": "deskpilot.actions",
    "Hover": "deskpilot.actions",
    "Drag": "deskpilot.actions",
    "Scroll": "deskpilot.actions",
    "Key": "deskpilot.actions",
    "Type": "deskpilot.actions",
    "Wait": "deskpilot.actions",
    "Done": "deskpilot.actions",
    "Fail": "deskpilot.actions",
    "parse_glm_reply": "deskpilot.actions",
    # errors
    "DeskpilotError": "deskpilot.errors",
    "UsageError": "deskpilot.errors",
    "ConfigError": "deskpilot.errors",
    "RunFolderError": "deskpilot.errors",
    "SandboxError": "deskpilot.errors",
    "CaptureError": "deskpilot.errors",
    "BackendError": "deskpilot.errors",
    "ParseError": "deskpilot.errors",
    "ActionError": "deskpilot.errors",
    "ExecutorError": "deskpilot.errors",
    "ReplayError": "deskpilot.errors",
    "CheckFailed": "deskpilot.errors",
}

__all__: list[str] = ["__version__", *sorted(_EXPORTS)]  # noqa: PLE0604


def __getattr__(name: str):
    if name in _EXPORTS:
        source = "Session" if name == "Sandbox" else name  # deskpilot.Sandbox is the high-level desktop
        value = getattr(importlib.import_module(_EXPORTS[name]), source)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deskpilot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
