"""Trajectory records: the typed lines of trajectory.jsonl."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field

from deskpilot.actions.models import Action

FORMAT_VERSION = 2  # of a run folder: settings.json carries it as "format"


class Status(str, Enum):
    """How a run ended; prints as its bare name (``DONE``, not ``Status.DONE``)."""

    DONE = "DONE"
    FAIL = "FAIL"
    MAX_STEPS = "MAX_STEPS"
    ERROR = "ERROR"
    STOPPED = "STOPPED"
    PASSED = "PASSED"  # DONE, and every check passed
    FAILED = "FAILED"  # DONE, but a check failed
    NEEDS_USER = "NEEDS_USER"  # the model asked the person something and nobody was there to answer

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class RequestSummary(BaseModel):
    """What was sent, without the pixels (screenshots are stored as files)."""

    messages: int = 0
    images: int = 0
    image_tokens: int = 0
    text_chars: int = 0
    thinking: bool = True
    # token accounting (agent.loop.tokens): text tokens are estimated, image tokens exact
    prompt_tokens_est: int = 0
    image_tokens_default: int = 0  # the same step's images without a budget (full size + 4 history at 50%)
    prefix_tokens_est: int = 0  # shared with the previous step's prompt: what a prefix cache can reuse
    prefix_share: float = 0.0


class Attempt(BaseModel):
    """A reply that did not parse, and the error sent back to the model."""

    raw_reply: str
    reasoning: str | None = None
    error: str
    prompt: str = ""  # the exact text sent, images as <image WxH>
    sampling: dict[str, Any] = Field(default_factory=dict)


class PolicyDecision(BaseModel):
    allowed: bool = True
    reason: str = ""
    by: str = "policy"  # "policy", or "user" when declined at --confirm (the run goes on)


class StepRecord(BaseModel):
    kind: Literal["step"] = "step"
    step: int
    time: str
    screenshot: str | None = None
    screen_size: tuple[int, int] = (0, 0)
    request: RequestSummary = Field(default_factory=RequestSummary)
    raw_reply: str = ""
    reasoning: str | None = None
    thought: str = ""
    action: Action | None = None
    action_text: str = ""
    model_points: list[tuple[float, float]] = Field(default_factory=list)
    points: list[tuple[int, int]] = Field(default_factory=list)
    element_info: str | None = None
    element: dict[str, Any] | None = None  # the widget under the first point (accessibility tree): role, name, path
    snapped: dict[str, Any] | None = None  # loop.snap_to_element moved the click: from, to, the widget
    memory: list[Any] | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    prompt: str = ""  # the exact text of the accepted attempt's prompt, images as <image WxH>
    sampling: dict[str, Any] = Field(default_factory=dict)
    policy: PolicyDecision = Field(default_factory=PolicyDecision)
    performed: bool = False
    cached: bool = False  # the action came from a cache file, not from the model
    timings_ms: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    settle: dict[str, Any] | None = None  # filled from the acted record when a run is loaded


class ActedRecord(BaseModel):
    """Written after an action ran: its timings and any error."""

    kind: Literal["acted"] = "acted"
    step: int
    timings_ms: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    settle: dict[str, Any] | None = None  # agent.desk.settle.SettleResult: what the wait after the action saw


class QueryRecord(BaseModel):
    """A one-off locate/ask call made outside the loop's steps."""

    kind: Literal["locate", "ask"]
    time: str
    query: str
    screenshot: str | None = None
    raw_reply: str = ""
    reasoning: str | None = None
    result: Any = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)
    error: str | None = None


class CheckRecord(BaseModel):
    """A verification check run after the last action (see deskpilot.agent.checks)."""

    kind: Literal["check"] = "check"
    time: str
    index: int
    check_kind: str
    label: str
    check: dict[str, Any] = Field(default_factory=dict)
    passed: bool
    message: str = ""
    evidence: dict[str, Any] = Field(default_factory=dict)
    ms: float = 0.0


class HumanAction(BaseModel):
    """One thing a person did during a turn, as the action that does it again (pixels as they clicked)."""

    action: Action
    element: dict[str, Any] | None = None  # the widget under the click (role, name, path), where the app has a tree


class HumanRecord(BaseModel):
    """A person had the desk between two agent steps (taken over from the live page, handed back)."""

    kind: Literal["human"] = "human"
    after_step: int  # the agent's last step before the person took over
    time: str
    seconds: float = 0.0
    note: str = ""  # what the person said they did (or answered), as the model is told
    question: str = ""  # the model's question, when this turn was an answer (CALL_USER)
    screenshot_before: str | None = None
    screenshot_after: str | None = None
    history_line: str = ""  # the exact line the model's history got
    inputs: list[dict[str, Any]] = Field(default_factory=list)  # the person's keys and clicks, from the X server
    # what the person did as actions (typed text with the run's secrets redacted), for replay and the cache;
    # None: not recorded (an answer to a question, a run from before 0.3.1, a display without RECORD)
    actions: list[HumanAction] | None = None
    not_redone: list[str] = Field(default_factory=list)  # gestures no action can redo (a media key): replay may diverge
    cached: bool = False  # done again from the action cache, not by a person


class EndRecord(BaseModel):
    kind: Literal["end"] = "end"
    time: str
    status: Status
    answer: str | None = None
    output: Any = None  # the answer validated against the output schema
    reason: str = ""
    steps: int = 0
    totals: dict[str, int | float] = Field(default_factory=dict)
    screenshot: str | None = None  # the screen after the last action (final.png)
    error_kind: str | None = None  # "parse" (replies never parsed), "unreachable" (model server), "backend", "action"


class RunResult(BaseModel):
    """How a run ended, with its history in memory (the same records as on disk).

    `history` holds one StepRecord per step in order; `actions`, `thoughts`,
    `errors` and `final_screenshot` are read off it. `report_path` is set
    when the run's report.html was written.
    """

    status: Status
    answer: str | None = None
    output: Any = None  # the answer validated against the output schema (JSON value or model instance)
    reason: str = ""
    steps: int = 0
    run_dir: str | None = None
    report_path: str | None = None
    totals: dict[str, int | float] = Field(default_factory=dict)
    error_kind: str | None = None  # as in EndRecord: why an ERROR happened, for exit codes
    checks: list[dict[str, Any]] = Field(default_factory=list)  # CheckResult dumps, when checks ran
    history: list[StepRecord] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the model said the task is done (and every check passed, if there were checks)."""
        return self.status in (Status.DONE, Status.PASSED)

    @property
    def steps_taken(self) -> int:
        return self.steps

    @property
    def actions(self) -> list[Action]:
        """The actions the model chose, in order (including DONE/FAIL and blocked ones)."""
        return [rec.action for rec in self.history if rec.action is not None]

    @property
    def performed_actions(self) -> list[Action]:
        """Only the actions that reached the screen."""
        return [rec.action for rec in self.history if rec.action is not None and rec.performed]

    @property
    def thoughts(self) -> list[str]:
        return [rec.thought for rec in self.history]

    @property
    def errors(self) -> list[str]:
        """Every error met: rejected replies, failed actions, and the run's own reason if it failed."""
        found = [a.error for rec in self.history for a in rec.attempts]
        found += [rec.error for rec in self.history if rec.error]
        if self.status not in (Status.DONE, Status.PASSED) and self.reason:
            found.append(self.reason)
        return found

    @property
    def final_screenshot(self) -> str | None:
        """Path of the last screenshot the run saw."""
        shots = [rec.screenshot for rec in self.history if rec.screenshot]
        if not shots or self.run_dir is None:
            return None
        from pathlib import Path

        return str(Path(self.run_dir) / shots[-1])


class ErrorRecord(BaseModel):
    """Stands in for a record that could not be written (the trajectory never loses a run)."""

    kind: Literal["error"] = "error"
    time: str
    record: str  # the kind of record that was replaced
    step: int | None = None
    error: str
