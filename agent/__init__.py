"""The agent: the loop, its trajectory, reports, replay and the CLI.

Names are loaded on first use so that `deskpilot --help` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Agent": "deskpilot.agent.loop",
    "LoopSettings": "deskpilot.agent.loop",
    "Policy": "deskpilot.agent.policy",
    "Region": "deskpilot.agent.policy",
    "RunResult": "deskpilot.agent.records",
    "Status": "deskpilot.agent.records",
    "StepRecord": "deskpilot.agent.records",
    "Trajectory": "deskpilot.agent.trajectory",
    "load_run": "deskpilot.agent.trajectory",
    "build_report": "deskpilot.agent.report",
    "replay": "deskpilot.agent.replay",
    "ReplayResult": "deskpilot.agent.replay",
    "RunConfig": "deskpilot.agent.config",
    "load_config": "deskpilot.agent.config",
}

__all__ = list(sorted(_EXPORTS))


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deskpilot.agent' has no attribute {name!r}")
