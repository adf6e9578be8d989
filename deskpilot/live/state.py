"""What the live view and the recording show besides the pixels: the loop's latest event.

Reads the loop's typed events (deskpilot.agent.loop.events: `kind` thinking, retry,
step, acted, end) and, for other publishers, plain dicts with an `event` key.
"""

from __future__ import annotations

import threading
import time
from typing import Any


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def as_dict(event: Any) -> dict[str, Any]:
    if isinstance(event, dict):
        return event
    if hasattr(event, "model_dump"):
        data = dict(event.__dict__)  # keep nested models (the step record) as objects
        data.setdefault("event", _field(event, "event") or _field(event, "kind") or type(event).__name__.lower())
        return data
    return {"event": str(event)}


class LiveState:
    """Thread-safe latest state: step, thought, action, click points, outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"phase": "starting", "step": 0, "max_steps": 0, "thought": "",
                                       "action": "", "action_type": "", "points": [], "status": "", "reason": "",
                                       "answer": None, "ended": False, "changed": time.time()}

    def update(self, event: Any) -> None:
        e = as_dict(event)
        kind = str(e.get("event", "")).lower()
        with self._lock:
            s = self._state
            if "step" in e and isinstance(e.get("step"), int):
                s["step"] = e["step"]
            if e.get("max_steps"):
                s["max_steps"] = e["max_steps"]
            if kind == "note":  # a line from another driver (a workflow's step, say)
                s.update(phase=str(e.get("text", "")), thought="", action="", points=[], action_type="")
            elif kind.startswith("thinking") or kind.startswith("ask"):
                s["phase"] = "asking the model"
            elif kind.startswith("retry"):
                s["phase"] = f"reply did not parse: {e.get('error', '')}"
            elif kind.startswith("step") or "record" in e:
                rec = e.get("record")
                action = _field(rec, "action") or {}
                if hasattr(action, "model_dump"):  # a typed action
                    action = action.model_dump(mode="json")
                policy = _field(rec, "policy")
                s.update(phase="acting" if _field(policy, "allowed", True) else "blocked",
                         thought=_field(rec, "thought", "") or "", action=_field(rec, "action_text", "") or "",
                         action_type=action.get("type", "") if isinstance(action, dict) else "",
                         points=[list(p) for p in (_field(rec, "points") or [])],
                         button=action.get("button", "") if isinstance(action, dict) else "")
            elif kind.startswith("end") or e.get("status"):
                status = e.get("status")
                s.update(phase="finished", status=getattr(status, "value", status) or "", reason=e.get("reason", ""),
                         answer=e.get("answer"))
            s["changed"] = time.time()

    def end(self) -> None:
        """The run is over: nothing more will be drawn or done (the page stops polling)."""
        with self._lock:
            self._state.update(ended=True, changed=time.time())
            if self._state["phase"] != "finished":
                self._state["phase"] = "ended"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state, points=[list(p) for p in self._state["points"]])
