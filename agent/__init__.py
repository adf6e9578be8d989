"""The run: everything between a task and its result, below the doors a user walks through.

Rooms (each imports only rooms listed above it, and never a door in `deskpilot/`):

- ``desk``     a sandbox with its apps, pools of desks, settling after an action, comparing frames
- ``records``  step records, trajectory, report, replay, action cache, run folders, secrets redaction
- ``checks``   the one check syntax: files, screen text, screenshots; run after a task or as a step
- ``dialects`` prompts and reply parsing as each GLM-V model was trained (4.5V, 4.1V, 5V)
- ``loop``     the perceive-think-act loop (`Agent`), its state, policy, events and one-off queries
- ``config``   the run spec (`RunSpec`): flags > environment > file > defaults; builds backend, dialect, desk

Names are loaded on first use so that `deskpilot --help` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Agent": "deskpilot.agent.loop.agent",
    "LoopSettings": "deskpilot.agent.loop.agent",
    "Policy": "deskpilot.agent.loop.policy",
    "Region": "deskpilot.agent.loop.policy",
    "RunResult": "deskpilot.agent.records.models",
    "Status": "deskpilot.agent.records.models",
    "StepRecord": "deskpilot.agent.records.models",
    "Trajectory": "deskpilot.agent.records.trajectory",
    "load_run": "deskpilot.agent.records.trajectory",
    "build_report": "deskpilot.agent.records.report",
    "replay": "deskpilot.agent.records.replay",
    "ReplayResult": "deskpilot.agent.records.replay",
    "RunConfig": "deskpilot.agent.config.spec",
    "load_config": "deskpilot.agent.config.spec",
}

__all__ = list(sorted(_EXPORTS))


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deskpilot.agent' has no attribute {name!r}")
