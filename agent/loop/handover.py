"""A person taking the desk from the agent and handing it back, between steps.

The live page (or any other door) calls ``take()`` and later
``give_back(note)``; the loop checks ``pending()`` at each step boundary, so a
person never drives while an action is on its way: the step in flight
finishes, then the loop sends nothing until the desk is handed back.
Listeners hear ``"person"`` when the person has the desk and ``"agent"`` when
the agent has it again (the VNC server opens and closes its input on them).
"""

from __future__ import annotations

import threading
import itertools
from typing import Any, Callable, Literal

from pydantic import BaseModel

Holder = Literal["agent", "asked", "person"]


class Question(BaseModel):
    """Something the run needs a person to answer: an action to approve, or the model's question."""

    id: int
    kind: Literal["confirm", "ask"]
    text: str  # the model's thought (confirm) or its question (ask)
    action: str = ""  # the action waiting for approval


class Handover:
    """Who has the desk: the agent, a person who asked for it, or the person."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: Holder = "agent"
        self._note = ""
        self._back = threading.Event()
        self._listeners: list[Callable[[str], None]] = []
        self.viewer_url: str | None = None  # where the person drives in a browser (noVNC), if anywhere
        self._ids = itertools.count(1)
        self._question: Question | None = None
        self._answer: dict[str, Any] | None = None
        self._answered = threading.Event()

    @property
    def holder(self) -> Holder:
        return self._holder

    def listen(self, callback: Callable[[str], None]) -> None:
        """``callback("person")`` when the person gets the desk, ``callback("agent")`` when it is handed back."""
        self._listeners.append(callback)

    def take(self) -> Holder:
        """A person asks for the desk; they get it at the next step boundary."""
        with self._lock:
            if self._holder == "agent":
                self._holder = "asked"
                self._back.clear()
            return self._holder

    def give_back(self, note: str = "") -> bool:
        """The person is done; ``note`` (what they did) goes into the model's history. False if not taken."""
        with self._lock:
            if self._holder == "agent" or self._back.is_set():  # not taken, or already handed back
                return False
            self._note = note.strip()
            self._back.set()
            return True

    # -- questions: the first answer wins (the page or the terminal) ----------------
    @property
    def question(self) -> Question | None:
        """The open question, if any (the page shows it)."""
        return self._question

    def post_question(self, kind: Literal["confirm", "ask"], text: str, action: str = "") -> Question:
        with self._lock:
            self._question = Question(id=next(self._ids), kind=kind, text=text, action=action)
            self._answer = None
            self._answered.clear()
            return self._question

    def answer(self, question_id: int, reply: dict[str, Any]) -> bool:
        """Answer the open question; False if it is not open (answered already, or another one)."""
        with self._lock:
            if self._question is None or self._question.id != question_id:
                return False
            self._answer, self._question = dict(reply), None
            self._answered.set()
            return True

    def wait_answer(self, question_id: int, timeout: float) -> dict[str, Any] | None:
        """The answer to ``question_id`` once given, else None after ``timeout``."""
        if not self._answered.wait(timeout):
            return None
        with self._lock:
            return self._answer if self._question is None or self._question.id != question_id else None

    def withdraw(self, question_id: int) -> None:
        """Close a question nobody will answer any more (the run ends)."""
        with self._lock:
            if self._question is not None and self._question.id == question_id:
                self._question = None

    # -- the loop's side -------------------------------------------------------
    def pending(self) -> bool:
        return self._holder == "asked"

    def begin(self) -> None:
        """The loop is at a step boundary: open the person's input, then say they have the desk."""
        self._tell("person")
        with self._lock:
            self._holder = "person"

    def wait(self, timeout: float) -> str | None:
        """The person's note once handed back, or None while they still drive."""
        if not self._back.wait(timeout):
            return None
        self._tell("agent")  # input closed before the agent acts again
        with self._lock:
            note, self._note = self._note, ""
            self._holder = "agent"
        return note

    def _tell(self, holder: str) -> None:
        for callback in list(self._listeners):
            callback(holder)
