"""What an OSWorld task needs beyond a suite task: steps before the agent, steps before judging, its rules.

A task file is converted (tasks.py) into an ordinary suite task: its desktop
(apps, the staged share), its checks (agent/checks' comparison kinds) and
this plan. The plan travels with the task as plain data (a Ray worker gets it
as JSON), so everything in it is a typed, already-mapped step: no OSWorld
text is interpreted at run time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Step(BaseModel):
    """One mapped set-up step, performed on the task's desk.

    - ``keys``: a key chord pressed through deskpilot's executor (``ctrl+s``),
      ``repeat`` times (from ``pyautogui.hotkey/press``).
    - ``type``: text typed through the executor (``pyautogui.typewrite/write``).
    - ``scroll``: wheel clicks (``pyautogui.scroll``), at ``at`` or the middle of the screen.
    - ``sleep``: seconds (capped: set-up waits are for apps, not for the clock).
    - ``run``: a command run inside the sandbox, waited for (``execute``/``command``).
    - ``launch``: an app started inside the sandbox, not waited for.
    - ``open``: a file opened with the app its type needs (``app`` is that app's command).
    - ``activate``: raise and focus the window whose title matches.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["keys", "type", "scroll", "sleep", "run", "launch", "open", "activate"]
    keys: str = ""
    repeat: int = Field(default=1, ge=1, le=100)
    text: str = ""
    seconds: float = Field(default=0.0, ge=0, le=60)
    argv: list[str] = Field(default_factory=list)
    window: str = ""
    strict: bool = False  # activate: the title must equal `window`, not just contain it
    direction: Literal["up", "down"] = "down"  # scroll (``repeat`` wheel clicks)
    at: tuple[int, int] | None = None  # scroll: where (default: the middle of the screen)

    def describe(self) -> str:
        if self.kind == "keys":
            return f"press {self.keys}" + (f" x{self.repeat}" if self.repeat > 1 else "")
        if self.kind == "type":
            return f"type {self.text[:40]!r}"
        if self.kind == "scroll":
            return f"scroll {self.direction} x{self.repeat}"
        if self.kind == "sleep":
            return f"sleep {self.seconds:g} s"
        if self.kind == "activate":
            return f"activate window {self.window!r}"
        return f"{self.kind} {' '.join(self.argv)[:80]}"


class Plan(BaseModel):
    """An OSWorld task's own parts (the rest is the suite task: desktop, checks, replies)."""

    model_config = ConfigDict(extra="forbid")

    domain: str = ""  # libreoffice_calc, libreoffice_writer, multi_apps, ... (from the index or the folder)
    setup: list[Step] = Field(default_factory=list)  # after the desk is ready, before the agent's first step
    postconfig: list[Step] = Field(default_factory=list)  # after the agent's DONE, before the checks
    infeasible: bool = False  # passes only when the agent's last action is FAIL
    skip: str = ""  # why this task cannot run here ('' = it can): never counted passed or failed
    share: str = ""  # the host folder standing for /home/user (staged files)
