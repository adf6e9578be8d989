"""A person's take-over turn done again without them: replay redoes it, and so does the action cache.

Real parts: a sandbox with xterm and a share, the live page's take-over
endpoints, a real VNC client for the person (vncdotool), the X server's RECORD
extension reading what they did; scripted GLM-4.5V replies for the agent.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from PIL import Image

from deskpilot.actions.models import Key, Type
from deskpilot.agent.desk.session import SessionSpec, app_from_command, open_sandbox, wait_until_ready
from deskpilot.agent.loop.agent import Agent
from deskpilot.agent.records.cache import CacheFile, RunCache, _png
from deskpilot.agent.records.models import HumanRecord, Status
from deskpilot.agent.records.replay import replay
from deskpilot.agent.records.trajectory import load_run
from deskpilot.cli.person import person_handover
from deskpilot.live import LiveView
from deskpilot.model_backend import ScriptedBackend
from deskpilot.model_backend.types import Reply
from deskpilot.perception import Capturer
from vnc_client import connect, type_text

SIZE = (1024, 700)
TASK = "write the note"


def box(call: str) -> str:
    return f"Next step.\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def post(view: LiveView, what: str, body: dict | None = None) -> int:
    request = urllib.request.Request(view.url + what, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as reply:
        return reply.status


def wait_until(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def spec_for(share) -> SessionSpec:
    return SessionSpec(size=SIZE, shares=[str(share)], apps=[app_from_command("xterm -geometry 165x30+0+0")])  # the command fits one line


def run_with(spec: SessionSpec, backend, run_dir, cache, person=None, policy=None):
    """One run on a fresh sandbox; ``person(sandbox, handover, view)`` drives when the agent hands over."""
    sb, apps = open_sandbox(spec)
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer, handles=apps, has_apps=True)
            handover = person_handover(sb, spec) if person else None
            view = LiveView(handover=handover) if person else None
            info = {"session": spec.model_dump(mode="json")}
            agent = Agent(backend, sb, run_dir=run_dir, capturer=capturer, handover=handover, run_info=info,
                          cache=RunCache(cache, TASK), policy=policy,
                          on_event=lambda e: person and e.kind == "step" and e.step == 1 and taken.set())
            taken = threading.Event()
            if view is None:
                with agent:
                    return agent.run(TASK)
            with view, agent:
                view.attach(sb)
                result: list = []
                runner = threading.Thread(target=lambda: result.append(agent.run(TASK)))
                runner.start()
                try:
                    assert taken.wait(60)
                    assert post(view, "takeover") == 200
                    wait_until(lambda: handover.holder == "person", "the person to get the desk")
                    person(sb, handover, view)
                finally:
                    if handover.holder != "agent":
                        handover.give_back("")
                    runner.join(180)
                return result[0]
        finally:
            capturer.close()


def test_a_person_turn_is_replayed_and_cached_so_a_rerun_needs_nobody(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    target = share / "person.txt"
    command = f"echo person wrote this > {target}"
    cache = tmp_path / "cache.json"
    spec = spec_for(share)

    def person(sb, handover, view) -> None:
        client = connect(sb.vnc.access.port, sb.vnc.access.password)
        try:
            type_text(client, command)
            client.keyPress("enter")
            wait_until(lambda: target.is_file() and target.read_text() == "person wrote this\n", "the file")
        finally:
            client.disconnect()
        assert post(view, "handback", {"note": "wrote the note in the terminal"}) == 200

    # 1. the model focuses the terminal; a person takes over and types the command; the model says DONE
    first = ScriptedBackend([box("left_click(start_box='[300,200]')"), box("DONE()")])
    result = run_with(spec, first, tmp_path / "run", cache, person=person)
    assert result.status == Status.DONE, result.reason
    assert first.calls == 2
    run = load_run(tmp_path / "run")
    (human,) = run.humans
    assert human.after_step == 1 and human.actions is not None
    actions = [item.action for item in human.actions]
    assert actions == [Type(text=command), Key(keys=["enter"])], actions
    stored = CacheFile.model_validate_json(cache.read_text())
    assert [h.after_step for h in stored.humans] == [1]
    html = (tmp_path / "run" / "report.html").read_text()
    assert "What the person did" in html and "key enter" in html

    # 2. replay on a fresh sandbox does the person's turn again: the file is written anew
    target.unlink()
    replayed = replay(tmp_path / "run")
    assert replayed.ok, replayed.message
    assert replayed.person_turns == 1
    assert target.read_text() == "person wrote this\n"

    # 2b. the screen the person started from differs: replay stops before doing their turn, with the evidence
    target.unlink()
    Image.new("RGB", SIZE, "black").save(tmp_path / "run" / human.screenshot_before)
    stopped = replay(tmp_path / "run")
    assert not stopped.ok and stopped.diverged_at == 2 and stopped.steps_replayed == 1, stopped.message
    assert stopped.message.startswith("a person's turn (before step 2): the screen differs")
    assert stopped.live_image and stopped.diff_image and not target.exists()

    # 3. the cached rerun: no person attached, no model call; the person's turn comes from the cache
    rerun = ScriptedBackend([])
    again = run_with(spec, rerun, tmp_path / "rerun", cache)
    assert again.status == Status.DONE, again.reason
    assert rerun.calls == 0
    assert target.read_text() == "person wrote this\n"
    (redone,) = load_run(tmp_path / "rerun").humans
    assert redone.cached and redone.history_line == human.history_line
    summary = json.loads((tmp_path / "rerun" / "cache.json").read_text())
    assert summary["person_turns_from_cache"] == 1 and summary["model_calls_saved"] == 2
    assert "Done again from the action cache" in (tmp_path / "rerun" / "report.html").read_text()

    # 4. the run's policy still holds for a cached person's turn (a cache file is not trusted): the model decides
    from deskpilot.agent.loop.policy import Policy

    target.unlink()
    strict = ScriptedBackend([box("DONE()")])
    refused = run_with(spec, strict, tmp_path / "strict", cache, policy=Policy(deny_keys=["enter"]))
    assert refused.status == Status.DONE and strict.calls == 1 and not target.exists()
    assert "policy refuses key" in json.loads((tmp_path / "strict" / "cache.json").read_text())["followed_until"]
    assert load_run(tmp_path / "strict").humans == []

    # 5. the person's turn no longer matches the screen: the model decides, and asking the person with
    #    nobody attached ends NEEDS_USER (the cached turn is not done blind)
    stored.humans[0].screen_png = _png(Image.new("RGB", SIZE, "black"))
    cache.write_text(stored.model_dump_json())
    asks = ScriptedBackend([box("CALL_USER(question='Please type the command for me')")])
    stuck = run_with(spec, asks, tmp_path / "stuck", cache)
    assert stuck.status == Status.NEEDS_USER, stuck.reason
    assert asks.calls == 1 and not target.exists()
    followed = json.loads((tmp_path / "stuck" / "cache.json").read_text())["followed_until"]
    assert "the person's turn after step 1: the screen differs" in followed


def test_replay_stops_with_one_line_where_a_person_acted_without_recorded_actions(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    spec = spec_for(share)
    backend = ScriptedBackend([box("left_click(start_box='[300,200]')"), box("left_click(start_box='[310,210]')"),
                               box("DONE()")])
    result = run_with(spec, backend, tmp_path / "run", tmp_path / "cache.json")
    assert result.status == Status.DONE
    path = tmp_path / "run" / "trajectory.jsonl"
    lines = path.read_text().splitlines()
    older = HumanRecord(after_step=1, time="2026-01-01T00:00:00", note="did something").model_dump(mode="json")
    older.pop("actions")  # as a run from before the actions were kept
    lines.insert(next(i for i, line in enumerate(lines) if '"step": 2' in line and '"kind": "step"' in line),
                 json.dumps(older))
    path.write_text("\n".join(lines) + "\n")
    replayed = replay(tmp_path / "run")
    assert not replayed.ok and replayed.person_at == 2 and replayed.steps_replayed == 1
    assert "a person acted here (step 2); replay cannot redo it" in replayed.message
    from typer.testing import CliRunner

    from deskpilot.cli import app

    said = CliRunner().invoke(app, ["replay", str(tmp_path / "run")])
    assert said.exit_code == 1 and "Traceback" not in said.output
    assert "a person acted here (step 2); replay cannot redo it" in " ".join(said.output.split())


def test_glm45v_waiting_on_an_unchanged_screen_asks_the_person_when_opted_in(tmp_path):
    """4.5V has no ask-user action; with ask_after_waits the second WAIT on the same screen becomes a question."""
    from apps import launch_probe
    from deskpilot.agent.dialects.render import prompt_text
    from deskpilot.agent.loop.agent import LoopSettings
    from deskpilot.sandbox import Sandbox

    asked: list[tuple[int, str]] = []
    with Sandbox(size=SIZE) as sb:
        launch_probe(sb, title="waits-probe")
        settings = LoopSettings(ask_after_waits=1)
        answered = ScriptedBackend([box("WAIT()"), box("WAIT()"), box("DONE()")])
        with Agent(answered, sb, run_dir=tmp_path / "answered", settings=settings,
                   ask_user=lambda step, q: asked.append((step, q)) or "the code is 1234") as agent:
            result = agent.run("log in")
        assert result.status == Status.DONE, result.reason
        assert [step for step, _ in asked] == [2] and "waited 2 times" in asked[0][1]
        assert "(the user answered: the code is 1234)" in prompt_text(answered.requests[2].messages)
        assert "CALL_USER" not in prompt_text(answered.requests[0].messages)  # the 4.5V prompt as trained
        nobody = ScriptedBackend([box("WAIT()"), box("WAIT()"), box("DONE()")])
        with Agent(nobody, sb, run_dir=tmp_path / "nobody", settings=settings) as agent:
            alone = agent.run("log in")
        assert alone.status == Status.NEEDS_USER and nobody.calls == 2
        off = ScriptedBackend([box("WAIT()"), box("WAIT()"), box("DONE()")])
        with Agent(off, sb, run_dir=tmp_path / "off") as agent:
            assert agent.run("log in").status == Status.DONE  # off by default: waiting is just waiting


class Screen:
    def __init__(self, image):
        self.image = image


def test_the_cache_keeps_a_person_turn_without_the_secrets_typed_in_it(tmp_path):
    """What a person typed is stored as ***NAME***; a run with the secret gets it back, one without does not follow."""
    screen = Screen(Image.new("RGB", (64, 48), "white"))
    typed = [{"action": {"type": "type", "text": "hunter2-pass"}, "element": None},
             {"action": {"type": "key", "keys": ["enter"]}, "element": None}]
    first = RunCache(tmp_path / "cache.json", TASK)
    first.keep(1, screen, Reply(content="x"), Key(keys=["tab"]), {"PASSWORD": "hunter2-pass"})
    first.keep_human(1, screen, typed, "typed the password", "The user took over and did: typed the password",
                     {"PASSWORD": "hunter2-pass"})
    first.finish(saved=True)
    text = (tmp_path / "cache.json").read_text()
    assert "hunter2" not in text and "***PASSWORD***" in text
    again = RunCache(tmp_path / "cache.json", TASK)
    entry = again.human_at(1, screen, secrets={"PASSWORD": "hunter2-pass"})
    assert entry is not None and entry.actions[0]["action"]["text"] == "hunter2-pass"
    without = RunCache(tmp_path / "cache.json", TASK)
    assert without.human_at(1, screen, secrets={}) is None and "needs secret PASSWORD" in (without.mismatch or "")


def test_a_person_click_keeps_the_widget_it_hit_where_the_app_has_a_tree(tmp_path):
    """GTK form on the sandbox's accessibility bus: each click of the person's turn names its widget."""
    import subprocess
    from pathlib import Path

    import pytest

    from deskpilot.agent.desk.session import Session
    from deskpilot.agent.loop.handover import Handover

    py, form = "/usr/bin/python3", str(Path(__file__).parent / "apps" / "gtk_form.py")
    if subprocess.run([py, "-c", "import gi; gi.require_version('Gtk', '3.0')"], capture_output=True).returncode:
        pytest.skip("python3-gi with gir1.2-gtk-3.0 is not installed")
    with Session((800, 600), apps=[[py, form]]) as desk:
        desk.get_by_role("window", name="Form").wait_for(timeout=20)
        entry, save = desk.get_by_label("Email").box(timeout=20), desk.get_by_role("button", name="Save").box()
        assert entry and save
        server = desk.sandbox.start_vnc()
        handover = Handover()
        backend = ScriptedBackend([box("WAIT()"), box("DONE()")])
        agent = Agent(backend, desk, run_dir=tmp_path / "run", handover=handover,
                      on_event=lambda e: e.kind == "step" and e.step == 1 and handover.take())
        result: list = []
        runner = threading.Thread(target=lambda: result.append(agent.run("save the form")))
        runner.start()
        try:
            wait_until(lambda: handover.holder == "person" or not runner.is_alive(), "the person to get the desk")
            client = connect(server.access.port, server.access.password)
            try:
                for (x, y, w, h), then in ((entry, "ada"), (save, "")):
                    client.mouseMove(x + w // 2, y + h // 2)
                    client.mousePress(1)
                    type_text(client, then)
                wait_until(lambda: '"clicked"' in desk.apps[0].stdout_path.read_text(), "the form to be saved")
            finally:
                client.disconnect()
            handover.give_back("saved it")
        finally:
            if handover.holder != "agent":
                handover.give_back("")
            runner.join(120)
            agent.close()
    assert result and result[0].status == Status.DONE
    (human,) = load_run(tmp_path / "run").humans
    assert human.actions is not None
    kinds = [(item.action.type, (item.element or {}).get("role"), (item.element or {}).get("name"))
             for item in human.actions]
    # (the entry's name comes from its label relation, which element_at does not follow: it reads "")
    assert kinds == [("click", "text", ""), ("type", None, None), ("click", "push button", "Save")], kinds
    assert human.actions[1].action == Type(text="ada")


LOGIN = """
import gi
gi.require_version("Gtk", "3.0")
from gi.repository import Gtk
w = Gtk.Window(title="Login")
w.set_default_size(400, 200)
box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
entry = Gtk.Entry()
entry.set_visibility(False)
box.pack_start(entry, False, False, 20)
entry.connect("changed", lambda e: print("typed", len(e.get_text()), flush=True))
w.add(box)
w.connect("destroy", Gtk.main_quit)
w.show_all()
Gtk.main()
"""


def test_what_a_person_types_into_a_password_field_is_kept_out_of_the_record(tmp_path):
    import subprocess

    import pytest

    from deskpilot.agent.desk.session import Session
    from deskpilot.agent.loop.handover import Handover

    py = "/usr/bin/python3"
    if subprocess.run([py, "-c", "import gi; gi.require_version('Gtk', '3.0')"], capture_output=True).returncode:
        pytest.skip("python3-gi with gir1.2-gtk-3.0 is not installed")
    with Session((800, 600), apps=[[py, "-c", LOGIN]]) as desk:
        field = desk.get_by_role("password text").box(timeout=20)
        assert field
        server = desk.sandbox.start_vnc()
        handover = Handover()
        agent = Agent(ScriptedBackend([box("WAIT()"), box("DONE()")]), desk, run_dir=tmp_path / "run",
                      handover=handover, on_event=lambda e: e.kind == "step" and e.step == 1 and handover.take())
        runner = threading.Thread(target=lambda: agent.run("log in"))
        runner.start()
        try:
            wait_until(lambda: handover.holder == "person" or not runner.is_alive(), "the person to get the desk")
            client = connect(server.access.port, server.access.password)
            try:
                x, y, w, h = field
                client.mouseMove(x + w // 2, y + h // 2)
                client.mousePress(1)
                type_text(client, "hunter2")
                wait_until(lambda: "typed 7" in desk.apps[0].stdout_path.read_text(), "the password to be typed")
            finally:
                client.disconnect()
            handover.give_back("logged in")
        finally:
            if handover.holder != "agent":
                handover.give_back("")
            runner.join(120)
            agent.close()
    (human,) = load_run(tmp_path / "run").humans
    assert human.actions is not None and [item.action.type for item in human.actions] == ["click"]
    assert "password" in human.actions[0].element["role"]
    assert human.not_redone == ["text typed into a password field (not a --secret value, so not recorded)"]
    assert not any("hunter2" in p.read_text(errors="replace") for p in (tmp_path / "run").iterdir() if p.is_file())
