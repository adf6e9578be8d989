"""A person in the loop of `deskpilot run`: take-over through the live page, approvals and questions.

Approvals (`--confirm`) and the model's questions are asked on the terminal
and in the live page at once; the first answer wins, the other side is told.
The terminal is read with ``select`` between looks at the page's answer, so no
stray reader is left behind to swallow the next line. With neither a terminal
nor a page, a question cannot be answered: the run ends NEEDS_USER.
"""

from __future__ import annotations

import select
import sys
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False, soft_wrap=True)


def person_handover(sandbox, spec):
    """The live page's take-over: a VNC server on the desk that takes input only while the person has it."""
    from deskpilot.agent.loop.handover import Handover
    from deskpilot.errors import SandboxError

    server = sandbox.vnc
    if server is None:  # a person takes over in the page (noVNC); --vnc also prints a line for any VNC client
        server = sandbox.start_vnc(view_only=True)
    server.set_view_only(True)  # the agent acts: nobody else types
    handover = Handover()
    view_only = spec.vnc is not None and spec.vnc.view_only  # --view-only: watching only, also on take-over
    if not view_only:
        handover.listen(lambda holder: server.set_view_only(holder != "person"))
    try:
        handover.viewer_url = sandbox.start_vnc_web().url(server.access.password, view_only=view_only)
    except SandboxError as err:  # no noVNC here: a VNC client still works with the printed line
        console.print(f"[yellow]warning:[/yellow] no take-over in the page: {escape(str(err))}", soft_wrap=True)
    return handover


def first_answer(handover, kind: str, text: str, action: str, prompt: str | None,
                 read: Callable[[str], dict[str, Any] | None], stdin=None) -> dict[str, Any]:
    """Ask in the page (if any) and on the terminal (if ``prompt``); the first valid answer wins."""
    stdin = stdin or sys.stdin
    question = handover.post_question(kind, text, action) if handover is not None else None
    if prompt is not None:
        console.print(prompt, end="", soft_wrap=True)
    try:
        while True:
            if question is not None and (reply := handover.wait_answer(question.id, 0.1)) is not None:
                if prompt is not None:
                    console.print("\n(answered in the live page)")
                return reply
            if prompt is not None and select.select([stdin], [], [], 0 if question is not None else 0.2)[0]:
                line = stdin.readline()
                if line == "":  # the terminal closed: only the page can answer now
                    prompt = None
                    if question is None:
                        return {"verdict": "quit"} if kind == "confirm" else {"text": None}
                    continue
                reply = read(line.strip())
                if reply is None:
                    console.print("please answer as asked: ", end="")
                    continue
                if question is None or handover.answer(question.id, reply):
                    return reply
    finally:
        if question is not None:
            handover.withdraw(question.id)


def _read_verdict(line: str) -> dict[str, Any] | None:
    word, _, why = line.partition(" ")
    verdict = {"y": "yes", "yes": "yes", "n": "no", "no": "no", "": "no", "q": "quit", "quit": "quit"}.get(word.lower())
    return None if verdict is None else {"verdict": verdict, "reason": why.strip()}


def make_confirm(handover, terminal: bool, redact: Callable[[str], str], before: Callable[[], None]):
    """`--confirm` on the terminal and/or the page: yes, no (skip, with a reason for the model) or quit."""

    def confirm(step: int, action, thought: str):
        before()
        call = action.model_dump_json()
        prompt = (f"[bold]step {step}[/bold]: {escape(redact(thought) or '(no explanation given)')}\n"
                  f"perform {escape(call)}? y(es) / n(o) [reason] / q(uit): ") if terminal else None
        reply = first_answer(handover, "confirm", redact(thought), call, prompt, _read_verdict)
        verdict = reply.get("verdict")
        if verdict == "no":
            return ("no", str(reply.get("reason") or ""))
        return verdict if verdict in ("yes", "quit") else "no"

    return confirm


def make_ask_user(handover, terminal: bool, before: Callable[[], None]):
    """The model's question to the person (CALL_USER), or None when nobody can answer (NEEDS_USER)."""
    if handover is None and not terminal:
        return None

    def ask(step: int, question: str) -> str | None:
        before()
        prompt = (f"[bold]step {step}[/bold]: the model asks: {escape(question or '(no question given)')}\n"
                  "your answer: ") if terminal else None
        reply = first_answer(handover, "ask", question, "", prompt, lambda line: {"text": line})
        text = reply.get("text")
        return None if text is None else str(text)

    return ask
