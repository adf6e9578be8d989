"""Performs typed actions inside one sandbox's display through a worker process.

The parent never imports pyautogui (it would bind to the user's own $DISPLAY);
a small worker started with the sandbox's DISPLAY/XAUTHORITY does the input.
Actions are validated here first, so a bad action never reaches the screen.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from deskpilot.actions import forkserver
from deskpilot.actions.errors import ActionError, ExecutorError
from deskpilot.actions.keys import KEY_NAMES
from deskpilot.actions.models import (
    Action,
    AskUser,
    Click,
    Done,
    DoubleClick,
    Drag,
    Fail,
    Hover,
    InputText,
    Key,
    Scroll,
    TripleClick,
    Type,
    Wait,
)
from deskpilot.actions.xkeys import KeysymError, key_keysym, text_keysyms

__all__ = ["ActionError", "Executor", "ExecutorError"]

_KNOWN = (Click, DoubleClick, TripleClick, Hover, Drag, Scroll, Key, Type, InputText, Wait, Done, Fail, AskUser)
START_TIMEOUT_S = 20.0


class Executor:
    """Context manager owning one worker process bound to one X display."""

    def __init__(
        self,
        display: str,
        *,
        xauthority: str | Path | None = None,
        screen_size: tuple[int, int] | None = None,
    ) -> None:
        self.display = display
        self.xauthority = Path(xauthority) if xauthority else None
        self.screen_size = screen_size
        self._proc: subprocess.Popen | forkserver.ForkedWorker | None = None
        self._stderr: Any = None  # a temporary file once the worker starts
        self._lock = threading.Lock()
        self._start()

    @classmethod
    def for_sandbox(cls, sandbox) -> "Executor":
        """An executor for a ``sandbox.Sandbox`` (its display, cookie and size)."""
        return cls(sandbox.display, xauthority=sandbox.xauthority, screen_size=tuple(sandbox.size))

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- validation -------------------------------------------------------

    def validate(self, action: Action) -> None:
        """Raise ActionError (one line) if ``action`` cannot be performed here."""
        if not isinstance(action, _KNOWN):
            raise ActionError(f"not an action: {type(action).__name__}")
        width, height = self.screen_size or (0, 0)
        for x, y in action.points():
            if not (0 <= x < width and 0 <= y < height):
                raise ActionError(f"{action.type} at ({x}, {y}) is outside the {width}x{height} screen")
        try:
            if isinstance(action, Key):
                self._validate_keys(list(action.keys))
            elif isinstance(action, (Type, InputText)):
                text_keysyms(action.text)
            modifiers = list(getattr(action, "modifiers", []))
            if modifiers:
                self._validate_keys(modifiers)
        except KeysymError as exc:
            raise ActionError(str(exc)) from None

    @staticmethod
    def _validate_keys(keys: list[str]) -> None:
        if not keys:
            raise ActionError("key action without keys")
        for name in keys:
            if name not in KEY_NAMES:
                raise ActionError(f"unknown key name {name!r}")
            key_keysym(name)

    # -- performing -------------------------------------------------------

    def perform(self, action: Action) -> float:
        """Perform ``action``; return elapsed milliseconds. Done/Fail do nothing."""
        self.validate(action)
        start = time.perf_counter()
        if isinstance(action, Wait):
            time.sleep(action.seconds)
        elif not isinstance(action, (Done, Fail, AskUser)):
            self._send(action)
        return (time.perf_counter() - start) * 1000

    def _send(self, action: Action) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is not None:
                forked = isinstance(self._proc, forkserver.ForkedWorker)  # its exit code is its server's to read
                how = "exited" if forked else f"exit code {self._proc.returncode}"
                self._fail(f"died ({how}); the next action restarts it")
            if self._proc is None:
                self._start()
            line = json.dumps({"action": action.model_dump(mode="json")}) + "\n"
            try:
                self._proc.stdin.write(line.encode())
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._fail("died")
            reply = self._read(_timeout_for(action))
        if not reply.get("ok"):
            raise ExecutorError(f"{action.type} failed on {self.display}: {reply.get('error')}")

    def _read(self, timeout: float) -> dict:
        with selectors.DefaultSelector() as sel:
            assert self._proc is not None and self._proc.stdout is not None
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self._fail(f"did not answer within {timeout:.0f} s")
        line = self._proc.stdout.readline()
        if not line:
            self._fail("died")
        return json.loads(line)

    def _fail(self, what: str) -> None:
        tail = self._stderr_tail()
        self._stop()
        detail = f": {tail}" if tail else ""
        raise ExecutorError(f"executor worker for display {self.display} {what}{detail}")

    # -- worker lifecycle -------------------------------------------------

    def _start(self) -> None:
        env = dict(os.environ, DISPLAY=self.display, XDG_SESSION_TYPE="x11")
        env.pop("XAUTHORITY", None)
        if self.xauthority:
            env["XAUTHORITY"] = str(self.xauthority)
        self._stderr = tempfile.TemporaryFile()
        self._proc = None
        if forkserver.enabled():  # a fork of a pre-imported process: ~10x less CPU than a fresh Python
            try:
                changes = {k: env.get(k) for k in ("DISPLAY", "XDG_SESSION_TYPE", "XAUTHORITY")}
                self._proc = forkserver.fork_worker(changes, self._stderr)
            except OSError:
                self._proc = None  # no fork server here: a fresh interpreter, as before
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "deskpilot.actions._worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            )
        hello = self._read(START_TIMEOUT_S)
        if not hello.get("ready"):
            self._stop()
            raise ExecutorError(f"executor worker cannot use display {self.display}: {hello.get('error')}")
        size = (int(hello["size"][0]), int(hello["size"][1]))
        if self.screen_size is not None and tuple(self.screen_size) != size:
            self._stop()
            raise ExecutorError(f"display {self.display} is {size[0]}x{size[1]}, not the expected "
                                f"{self.screen_size[0]}x{self.screen_size[1]}")
        self.screen_size = size

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()  # the worker restores the keymap on EOF
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        with self._lock:
            self._stop()


def _timeout_for(action: Action) -> float:
    if isinstance(action, (Type, InputText)):
        return 30.0 + 0.05 * len(action.text)
    return 30.0
