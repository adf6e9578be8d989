"""Take over and hand back during a run with the live page: a real sandbox, the page's HTTP endpoints,
a real VNC client for the person, scripted GLM-4.5V replies for the agent."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from apps import launch_probe
from deskpilot.actions.models import Click, Type
from chromium import Chromium, needs_chromium
from deskpilot.agent.desk.session import SessionSpec
from deskpilot.agent.dialects.render import prompt_text
from deskpilot.agent.loop.agent import Agent
from deskpilot.agent.records.trajectory import load_run
from deskpilot.cli.person import person_handover
from deskpilot.live import LiveView
from deskpilot.model_backend import ScriptedBackend
from deskpilot.sandbox import Sandbox
from vnc_client import connect, type_text

SIZE = (1024, 700)


def box(call: str) -> str:
    return f"Next step.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def post(view: LiveView, what: str, body: dict | None = None, origin: str | None = None) -> tuple[int, dict | str]:
    headers = {"Content-Type": "application/json"} | ({"Origin": origin} if origin else {})
    request = urllib.request.Request(view.url + what, data=json.dumps(body or {}).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def state(view: LiveView) -> dict:
    with urllib.request.urlopen(view.url + "state.json", timeout=20) as reply:
        return json.loads(reply.read())


def wait_until(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_take_over_pauses_the_agent_records_the_human_turn_and_tells_the_model(tmp_path):
    with Sandbox(size=SIZE) as sb:
        probe = launch_probe(sb, title="takeover-probe")
        x, y, w, h = probe.widgets["e1"]
        e1 = (round((x + w / 2) * 1000 / SIZE[0]), round((y + h / 2) * 1000 / SIZE[1]))
        backend = ScriptedBackend([box(f"left_click(start_box='[{e1[0]},{e1[1]}]')"),
                                   box("type(content='agent')"), box("DONE()")])
        handover = person_handover(sb, SessionSpec(size=SIZE))
        vnc = sb.vnc
        assert vnc is not None and vnc.access.view_only  # while the agent drives, VNC takes no input
        with LiveView(handover=handover) as view:
            view.attach(sb)
            assert post(view, "handback", {"note": "x"})[0] == 409  # nothing to hand back yet
            assert post(view, "takeover", origin="http://evil.example")[0] == 403
            taken: list[int] = []

            def on_event(event) -> None:
                if event.kind == "step" and event.step == 1:  # decided step 1: ask for the desk now
                    taken.append(post(view, "takeover")[0])

            agent = Agent(backend, sb, run_dir=tmp_path / "run", on_event=on_event, handover=handover)
            result: list = []
            runner = threading.Thread(target=lambda: result.append(agent.run("fill the form")))
            runner.start()
            try:
                wait_until(lambda: state(view).get("handover") == "person" or not runner.is_alive(), "the person to get the desk")
                assert runner.is_alive(), (result, taken, backend.calls)
                assert taken == [200] and backend.calls == 1 and not vnc.access.view_only
                mark = probe.log.mark()
                client = connect(vnc.access.port, vnc.access.password)
                try:
                    x2, y2, w2, h2 = probe.widgets["e2"]
                    client.mouseMove(x2 + w2 // 2, y2 + h2 // 2)
                    client.mousePress(1)
                    probe.log.wait_for(lambda e: e["ev"] == "press" and e["w"] == "e2", mark, timeout=20)
                    type_text(client, "person")
                    probe.log.wait_for(lambda e: e["ev"] == "content" and e["e2"] == "person", mark, timeout=20)
                finally:
                    client.disconnect()
                assert backend.calls == 1, "the model was asked while the person had the desk"
                assert [e for e in probe.log.since(mark) if e["ev"] == "content" and "agent" in e["e1"] + e["e2"]] == []
                code, body = post(view, "handback", {"note": "typed person into the second field"})
                assert code == 200
            finally:
                if handover.holder != "agent":
                    handover.give_back("")
                runner.join(120)
                agent.close()
        assert result and result[0].status.value == "DONE", result
        assert vnc.access.view_only  # handed back: input closed again
        second = prompt_text(backend.requests[1].messages)
        assert "The user took over and did: typed person into the second field" in second
        assert "The user took over" not in prompt_text(backend.requests[0].messages)
        run = load_run(tmp_path / "run")
        assert len(run.humans) == 1 and [s.step for s in run.steps] == [1, 2, 3]
        human = run.humans[0]
        assert human.after_step == 1 and human.note == "typed person into the second field"
        clicks = [i for i in human.inputs if i["kind"] == "button_press"]
        assert clicks and (clicks[0]["x"], clicks[0]["y"]) == (x2 + w2 // 2, y2 + h2 // 2)  # from the X server
        keys = [i["key"] for i in human.inputs if i["kind"] == "key_press"]
        assert keys.count("<char>") == len("person") and "p" not in keys  # typed characters are masked
        assert [item.action for item in human.actions] == [  # what replay and the cache redo
            Click(x=x2 + w2 // 2, y=y2 + h2 // 2), Type(text="person")]
        for shot in (human.screenshot_before, human.screenshot_after):
            assert shot and (tmp_path / "run" / shot).is_file()
        lines = [json.loads(line) for line in (tmp_path / "run" / "trajectory.jsonl").read_text().splitlines()]
        kinds = [line["kind"] for line in lines if line["kind"] in ("step", "human")]
        assert kinds == ["step", "human", "step", "step"]
        html = (tmp_path / "run" / "report.html").read_text()
        assert "A person&#39;s turns" in html or "A person's turns" in html
        assert "The user took over and did: typed person into the second field" in html


@pytest.mark.parametrize("body,code", [({"note": 5}, 400), ({"note": "x" * 2001}, 400)])
def test_hand_back_refuses_bad_notes(body, code):
    from deskpilot.agent.loop.handover import Handover

    handover = Handover()
    handover.take()
    with LiveView(handover=handover) as view:
        assert post(view, "handback", body)[0] == code
        bad_token = urllib.request.Request(view.url.replace(view.token, "nope") + "takeover", data=b"{}",
                                           headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(bad_token, timeout=20)


@needs_chromium
def test_take_over_in_the_page_drives_the_desk_through_novnc_in_headless_chromium(tmp_path):
    with Sandbox(size=SIZE) as sb:
        probe = launch_probe(sb, title="novnc-probe")
        backend = ScriptedBackend([box("WAIT()")] * 2 + [box("DONE()")])
        handover = person_handover(sb, SessionSpec(size=SIZE))
        assert handover.viewer_url and sb.vnc_web is not None
        with LiveView(handover=handover) as view, Chromium(1400, 1000) as browser:
            view.attach(sb)
            browser.goto(view.url)
            browser.wait_for("window.deskpilotLive.state && window.deskpilotLive.state.handover", lambda v: v == "agent")
            assert browser.eval("document.getElementById('viewer').hidden") is True
            agent = Agent(backend, sb, run_dir=tmp_path / "run", handover=handover,
                          on_event=lambda e: e.kind == "step" and e.step == 1 and browser_click_later.set())
            browser_click_later = threading.Event()
            result: list = []
            runner = threading.Thread(target=lambda: result.append(agent.run("wait")))
            runner.start()
            try:
                assert browser_click_later.wait(60)
                browser.eval("document.getElementById('takeover').click()")
                browser.wait_for("window.deskpilotLive.state.handover", lambda v: v == "person", timeout=60)
                browser.wait_for("document.getElementById('viewer').hidden", lambda v: v is False)
                rect = browser.eval("(function(){var v=document.getElementById('viewer'); v.scrollIntoView();"
                                    "var r=v.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];})()")
                assert rect[2:] == list(SIZE)  # the desktop at 1:1
                x, y, w, h = probe.widgets["e1"]
                px, py = rect[0] + x + w / 2, rect[1] + y + h / 2
                mark = probe.log.mark()
                deadline = time.monotonic() + 25
                while not [e for e in probe.log.since(mark) if e["ev"] == "motion" and e["w"] == "e1"]:
                    assert time.monotonic() < deadline, "noVNC never moved the pointer onto the field"
                    for dx in (0, 1):  # a move must change position to be sent
                        browser.call("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=px + dx, y=py)
                    time.sleep(0.2)
                for kind in ("mousePressed", "mouseReleased"):
                    browser.call("Input.dispatchMouseEvent", session=True, type=kind, x=px, y=py, button="left",
                                 clickCount=1)
                probe.log.wait_for(lambda e: e["ev"] == "press" and e["w"] == "e1", mark, timeout=20)
                for char in "page":
                    browser.call("Input.dispatchKeyEvent", session=True, type="keyDown", key=char, text=char,
                                 code=f"Key{char.upper()}", windowsVirtualKeyCode=ord(char.upper()))
                    browser.call("Input.dispatchKeyEvent", session=True, type="keyUp", key=char,
                                 code=f"Key{char.upper()}", windowsVirtualKeyCode=ord(char.upper()))
                probe.log.wait_for(lambda e: e["ev"] == "content" and e["e1"] == "page", mark, timeout=20)
                browser.eval("document.getElementById('note').value = 'typed page'")
                browser.eval("document.getElementById('handback').click()")
                runner.join(120)
            finally:
                if handover.holder != "agent":
                    handover.give_back("")
                runner.join(120)
                agent.close()
            browser.wait_for("document.getElementById('viewer').hidden", lambda v: v is True, timeout=30)
        assert result and result[0].status.value == "DONE"
        assert "The user took over and did: typed page" in prompt_text(backend.requests[1].messages)
        (human,) = load_run(tmp_path / "run").humans
        assert [item.action for item in human.actions][-1] == Type(text="page")  # typed in the page, through noVNC
