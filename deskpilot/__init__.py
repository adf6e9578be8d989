"""deskpilot: a vision-language model operates a sandboxed virtual desktop.

The public API lives here; the subpackages (agent, sandbox, perception,
actions, model_backend) each do one job. Names load on first use so that
`import deskpilot` and `deskpilot --help` stay fast.
"""

from __future__ import annotations

import importlib
import os as _os

__version__ = "0.2.0"

# In a source checkout the subpackages sit beside this folder, not in it.
_here = _os.path.dirname(__file__)
if not _os.path.isdir(_os.path.join(_here, "agent")):
    _root = _os.path.dirname(_here)
    if _os.path.isfile(_os.path.join(_root, "agent", "__init__.py")):
        __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821

_EXPORTS: dict[str, str] = {}

__all__: list[str] = ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deskpilot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
