"""Approvals and questions answered from the live page (HTTP) or the terminal, first answer wins;
NEEDS_USER when nobody is there. Real sandbox and page server, scripted GLM-V replies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from deskpilot.agent.dialects.render import prompt_text
from deskpilot.agent.loop.agent import Agent
from deskpilot.agent.loop.handover import Handover
from deskpilot.agent.records.trajectory import load_run
from deskpilot.cli.person import first_answer, make_ask_user, make_confirm
from deskpilot.live import LiveView
from deskpilot.model_backend import ScriptedBackend
from deskpilot.sandbox import Sandbox

SIZE = (640, 480)


def box(call: str) -> str:
    return f"Next step.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def post(view: LiveView, what: str, body: dict) -> int:
    request = urllib.request.Request(view.url + what, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def open_question(view: LiveView, timeout: float = 60.0, after: int = 0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(view.url + "state.json", timeout=20) as reply:
            question = json.loads(reply.read()).get("question")
        if question and question["id"] > after:
            return question
        assert time.monotonic() < deadline, "no question appeared in the page"
        time.sleep(0.05)


def run_in_thread(agent: Agent, task: str):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(agent.run(task)))
    thread.start()
    return thread, result


def test_confirm_from_the_page_approve_then_skip_with_a_reason(tmp_path):
    backend = ScriptedBackend([box("left_click(start_box='[500,500]')"), box("type(content='x')"), box("DONE()")])
    handover = Handover()
    with Sandbox(size=SIZE) as sb, LiveView(handover=handover) as view:
        confirm = make_confirm(handover, False, lambda t: t, lambda: None)
        agent = Agent(backend, sb, run_dir=tmp_path / "run", confirm=confirm, handover=handover)
        thread, result = run_in_thread(agent, "click then type")
        try:
            first = open_question(view)
            assert first["kind"] == "confirm" and '"click"' in first["action"]
            assert post(view, "answer", {"id": first["id"], "verdict": "maybe"}) == 400
            assert post(view, "answer", {"id": first["id"], "verdict": "yes"}) == 200
            assert post(view, "answer", {"id": first["id"], "verdict": "no"}) == 409  # answered already
            second = open_question(view, after=first["id"])
            assert '"type"' in second["action"]
            assert post(view, "answer", {"id": second["id"], "verdict": "no", "reason": "not that text"}) == 200
        finally:
            thread.join(120)
            agent.close()
    assert result[0].status.value == "DONE"
    run = load_run(tmp_path / "run")
    assert run.steps[0].performed and run.steps[1].policy.reason == "declined by the user: not that text"
    assert "declined by the user: not that text" in prompt_text(backend.requests[2].messages)


def test_stop_from_the_page_ends_the_run_stopped(tmp_path):
    backend = ScriptedBackend([box("left_click(start_box='[500,500]')"), box("DONE()")])
    handover = Handover()
    with Sandbox(size=SIZE) as sb, LiveView(handover=handover) as view:
        agent = Agent(backend, sb, run_dir=tmp_path / "run", handover=handover,
                      confirm=make_confirm(handover, False, lambda t: t, lambda: None))
        thread, result = run_in_thread(agent, "click")
        try:
            assert post(view, "answer", {"id": open_question(view)["id"], "verdict": "quit"}) == 200
        finally:
            thread.join(120)
            agent.close()
    assert result[0].status.value == "STOPPED" and backend.calls == 1


@pytest.mark.parametrize("dialect", ["glm-4.5v", "glm-5v"])
def test_the_models_question_is_answered_in_the_page_and_reaches_the_next_prompt(tmp_path, dialect):
    backend = ScriptedBackend([box("CALL_USER(question='Which name goes on the letter?')"), box("DONE()")])
    handover = Handover()
    with Sandbox(size=SIZE) as sb, LiveView(handover=handover) as view:
        agent = Agent(backend, sb, dialect, run_dir=tmp_path / "run", handover=handover,
                      ask_user=make_ask_user(handover, False, lambda: None))
        thread, result = run_in_thread(agent, "write the letter")
        try:
            question = open_question(view)
            assert question["kind"] == "ask" and question["text"] == "Which name goes on the letter?"
            assert post(view, "answer", {"id": question["id"], "text": 7}) == 400
            assert post(view, "answer", {"id": question["id"], "text": "Ada Lovelace"}) == 200
        finally:
            thread.join(120)
            agent.close()
    assert result[0].status.value == "DONE"
    second = prompt_text(backend.requests[1].messages)
    assert "(the user answered: Ada Lovelace)" in second
    if dialect == "glm-5v":
        assert "Latest user response:\nAda Lovelace" in second
    human = load_run(tmp_path / "run").humans
    assert [(h.question, h.note) for h in human] == [("Which name goes on the letter?", "Ada Lovelace")]


def test_first_answer_wins_terminal_or_page():
    handover = Handover()
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as stdin, os.fdopen(write_end, "w") as terminal:
        got: list = []
        asker = threading.Thread(target=lambda: got.append(first_answer(
            handover, "confirm", "t", "a", "perform? ", lambda line: {"verdict": line}, stdin=stdin)))
        asker.start()
        deadline = time.monotonic() + 20
        while handover.question is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        qid = handover.question.id
        terminal.write("yes\n")
        terminal.flush()
        asker.join(20)
        assert got == [{"verdict": "yes"}]
        assert handover.answer(qid, {"verdict": "quit"}) is False  # the page came second
        got.clear()
        asker = threading.Thread(target=lambda: got.append(first_answer(
            handover, "confirm", "t", "a", "perform? ", lambda line: {"verdict": line}, stdin=stdin)))
        asker.start()
        while handover.question is None or handover.question.id == qid:
            assert time.monotonic() < deadline + 20
            time.sleep(0.01)
        assert handover.answer(handover.question.id, {"verdict": "quit"})
        asker.join(20)
        assert got == [{"verdict": "quit"}]


def test_a_question_with_nobody_attached_ends_needs_user_with_exit_code_5(tmp_path):
    script = tmp_path / "r.json"
    script.write_text(json.dumps([box("CALL_USER(question='What is the PIN?')"), box("DONE()")]))
    done = subprocess.run([sys.executable, "-m", "deskpilot.cli", "run", "unlock", "--script", str(script),
                           "--size", "640x480", "--out", str(tmp_path / "run"), "--json"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    assert done.returncode == 5, done.stderr[-1500:]
    result = json.loads(done.stdout)
    assert result["status"] == "NEEDS_USER" and "What is the PIN?" in result["reason"]
    assert load_run(tmp_path / "run").end.status.value == "NEEDS_USER"


def test_confirm_without_terminal_or_page_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "deskpilot.cli", "run", "x", "--script", str(tmp_path / "r.json"),
                           "--confirm"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--confirm needs a terminal or the live page" in done.stderr



def test_run_live_confirm_without_a_terminal_is_answered_in_the_page(tmp_path):
    import re
    import select

    script = tmp_path / "r.json"
    script.write_text(json.dumps([box("left_click(start_box='[500,500]')"), box("DONE()")]))
    proc = subprocess.Popen([sys.executable, "-m", "deskpilot.cli", "run", "click once", "--app", "xterm",
                             "--script", str(script), "--size", "640x480", "--out", str(tmp_path / "run"),
                             "--live", "--confirm", "--json"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        said, url = "", None
        deadline = time.monotonic() + 90
        while url is None:
            assert time.monotonic() < deadline and proc.poll() is None, said[-1500:]
            if select.select([proc.stderr], [], [], 1.0)[0]:
                said += proc.stderr.readline().decode()
                if found := re.search(r"live view: (http://127\.0\.0\.1:\d+/\S+/)", said):
                    url = found.group(1)
        view = type("View", (), {"url": url})  # the page's address is all post() needs
        question = open_question(view)
        assert question["kind"] == "confirm" and '"click"' in question["action"]
        assert post(view, "answer", {"id": question["id"], "verdict": "yes"}) == 200
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-1500:]
    assert json.loads(out)["status"] == "DONE"
    assert load_run(tmp_path / "run").steps[0].performed
