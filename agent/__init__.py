"""The agent: the loop, its trajectory, reports, replay and the CLI.

Names are loaded on first use so that `deskpilot --help` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Agent": "agent.loop",
    "LoopSettings": "agent.loop",
    "Policy": "agent.policy",
    "Region": "agent.policy",
    "RunResult": "agent.records",
    "Status": "agent.records",
    "StepRecord": "agent.records",
    "Trajectory": "agent.trajectory",
    "load_run": "agent.trajectory",
    "build_report": "agent.report",
    "replay": "agent.replay",
    "ReplayResult": "agent.replay",
    "RunConfig": "agent.config",
    "load_config": "agent.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
