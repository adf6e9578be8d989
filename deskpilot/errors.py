"""Every exception deskpilot raises on purpose, in one tree (like httpx's).

    DeskpilotError                      root: catch this to catch them all
    ├── UsageError (ValueError)         the caller gave something wrong; the message says what
    │   ├── ConfigError                 a setting, flag, config or spec file
    │   └── RunFolderError              a run folder that is missing, broken or already used
    ├── SandboxError (RuntimeError)     the desktop could not start, or an app would not
    │   ├── DeskStartError              its display or window manager failed (a machine fault; pools retry)
    │   └── WindowNotFound              no window with that title appeared (titles: what was there)
    ├── CaptureError (RuntimeError)     the screen could not be read
    ├── BackendError (RuntimeError)     a model call failed (status_code, retryable)
    ├── ParseError (ValueError)         a model reply is not an action (message is for the model)
    ├── ActionError (ValueError)        an action cannot be performed as given
    ├── ExecutorError (RuntimeError)    the input worker died or timed out
    ├── ReplayError (RuntimeError)      a recording cannot be replayed
    └── CheckFailed (AssertionError)    a verification check did not pass

Messages are one line, written to be shown to a person as they are. The
standard-library bases are kept so `except ValueError` in older callers
still works. Anything else that escapes is a bug in deskpilot.
"""

from __future__ import annotations

from typing import Any


class DeskpilotError(Exception):
    """Root of every error deskpilot raises on purpose."""


class UsageError(DeskpilotError, ValueError):
    """The caller (a person, a script, a config) gave something wrong."""


class ConfigError(UsageError):
    """A user mistake in settings; the message is shown as is."""


class RunFolderError(UsageError):
    """A run folder that is missing, unreadable, or already holds a run."""


class SandboxError(DeskpilotError, RuntimeError):
    """A one-line, user-facing message, e.g. ``Xvfb not found: apt-get install xvfb``."""


class DeskStartError(SandboxError):
    """The display (Xvfb) or its window manager (openbox) failed to start.

    A fault of the machine at that moment (load, a race), not of the task or
    the user: a pool retries it on a fresh desk. ``logs`` holds their logs
    (file name -> text), read before the sandbox's folder was deleted, so the
    evidence outlives the sandbox. ``failures`` lists every failed start of
    one retried build (this one last).
    """

    def __init__(self, message: str, *, logs: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.logs = dict(logs or {})
        self.failures: list[DeskStartError] = [self]


class CaptureError(DeskpilotError, RuntimeError):
    """The screen of a display could not be captured."""


class WindowNotFound(SandboxError):
    """No window with the wanted title appeared in time; ``titles`` are the windows that were there."""

    def __init__(self, message: str, titles: list[str]) -> None:
        super().__init__(message)
        self.titles = titles


class BackendError(DeskpilotError, RuntimeError):
    """A model call failed; the message is short and says what to do about it.

    ``status_code`` is the HTTP status when the server answered; ``retryable``
    says whether the same request may succeed later (timeouts, 429, 5xx).
    """

    def __init__(self, message: str, *, status_code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


class BackendUnreachable(BackendError):
    """The model server could not be reached, or refused us (no server, bad URL, key refused, model not served).

    Its own kind so the CLI can give it its own exit code: retrying the run will not help.
    """


class ParseError(DeskpilotError, ValueError):
    """A reply the parser cannot turn into an action.

    ``message`` is one short sentence written for the model, e.g. "the
    start_box must be [x,y] with numbers from 0 to 999".
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ActionError(DeskpilotError, ValueError):
    """The action cannot be performed as given; raised before anything is sent."""


class ExecutorError(DeskpilotError, RuntimeError):
    """The worker that performs actions failed to start, died or timed out."""


class ReplayError(DeskpilotError, RuntimeError):
    """The run folder cannot be replayed (missing settings, no steps...)."""


class CheckFailed(DeskpilotError, AssertionError):
    """A verification check did not pass; ``evidence`` says what was seen.

    ``screen`` is the frame the failure was seen on (a PIL image), when the
    code that failed had one: the door that reports the failure saves it, so
    the picture is of the moment of failure, not of a later screen.
    """

    def __init__(self, message: str, *, evidence: Any = None, screen: Any = None) -> None:
        super().__init__(message)
        self.evidence = evidence
        self.screen = screen


__all__ = [
    "ActionError", "BackendError", "CaptureError", "CheckFailed", "ConfigError", "DeskpilotError",
    "ExecutorError", "ParseError", "ReplayError", "RunFolderError", "SandboxError", "UsageError", "WindowNotFound",
]
