"""What the agent may do, decided outside the model.

The policy is frozen when a run starts: nothing the model says or the screen
shows can widen it.
"""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deskpilot.actions.keys import normalize_key
from deskpilot.errors import UsageError
from deskpilot.actions.models import Action, Key, Type, split_combo


class Region(BaseModel):
    """A screen rectangle in pixels, edges included."""

    model_config = ConfigDict(frozen=True)
    x1: int
    y1: int
    x2: int
    y2: int

    @model_validator(mode="after")
    def _ordered(self) -> "Region":
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise UsageError("a region needs x1 <= x2 and y1 <= y2")
        return self

    @classmethod
    def parse(cls, text: str) -> "Region":
        """'x1,y1,x2,y2' -> Region (for the CLI and config files)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts):
            raise UsageError(f"a region is 'x1,y1,x2,y2' in pixels, got {text!r}")
        return cls(x1=int(parts[0]), y1=int(parts[1]), x2=int(parts[2]), y2=int(parts[3]))

    def contains(self, x: int, y: int) -> bool:
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2


def _combo(text: str) -> str:
    return "+".join(sorted(normalize_key(k) for k in split_combo(text)))


class Policy(BaseModel):
    """Limits enforced by the loop for every action a model proposes."""

    model_config = ConfigDict(frozen=True)
    max_steps: int = Field(default=30, ge=1)
    step_timeout_s: float = Field(default=300.0, gt=0)
    run_timeout_s: float = Field(default=3600.0, gt=0)
    stuck_repeats: int = Field(default=3, ge=2)
    allow_keys: tuple[str, ...] | None = None
    deny_keys: tuple[str, ...] = ()
    allow_regions: tuple[Region, ...] | None = None
    deny_regions: tuple[Region, ...] = ()
    on_violation: str = Field(default="stop", pattern="^(stop|skip)$")

    @field_validator("allow_regions", "deny_regions", mode="before")
    @classmethod
    def _regions(cls, value):
        """Regions may be given as 'x1,y1,x2,y2' text (flags, config files)."""
        if value is None:
            return None
        return tuple(Region.parse(v) if isinstance(v, str) else v for v in value)

    @field_validator("allow_keys", "deny_keys", mode="before")
    @classmethod
    def _norm_keys(cls, value):
        if value is None:
            return None
        return tuple(_combo(str(v)) for v in value)

    def _check_combo(self, combo: str, label: str) -> tuple[bool, str]:
        if combo in self.deny_keys:
            return False, f"key {label} is on the deny list"
        if self.allow_keys is not None and combo not in self.allow_keys:
            return False, f"key {label} is not on the allow list"
        return True, ""

    def check(self, action: Action) -> tuple[bool, str]:
        """(allowed, reason) for one action."""
        if isinstance(action, Key):
            allowed, reason = self._check_combo("+".join(sorted(action.keys)), action.combo)
            if not allowed:
                return allowed, reason
        if isinstance(action, Type):  # typed text presses keys too: "\n" is Enter
            for char, key in (("\n", "enter"), ("\r", "enter"), ("\t", "tab")):
                if char in action.text and (key in self.deny_keys or
                                            (self.allow_keys is not None and key not in self.allow_keys)):
                    return False, f"the text contains {key!r}, which the key policy does not allow"
        for x, y in action.points():
            for region in self.deny_regions:
                if region.contains(x, y):
                    return False, f"point ({x}, {y}) is in a denied region {region.x1},{region.y1},{region.x2},{region.y2}"
            if self.allow_regions is not None and not any(r.contains(x, y) for r in self.allow_regions):
                return False, f"point ({x}, {y}) is outside the allowed regions"
        return True, ""


Confirm = Callable[[int, Action, str], "bool | str | tuple[str, str]"]
"""Asked before each action: (step, action, thought) -> True / "yes" (go ahead), "no" or ("no", why)
(skip it; the model is told why and goes on), False / "quit" (stop the run)."""
