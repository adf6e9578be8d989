"""`deskpilot record` driven by a real VNC client on mousepad: the workflow it writes passes
`workflow check` and, run on a fresh sandbox, writes the same file again."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from deskpilot.agent.records.trajectory import load_run
from deskpilot.perception.inputs import InputEvent
from deskpilot.record.compile import Seen, compile_steps
from vnc_client import connect, framebuffer, type_text

DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]
URL = re.compile(r"^vnc://:([A-Za-z0-9]{8})@127\.0\.0\.1:(\d+)$")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _wait_lines(proc, want, timeout=120.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stderr], [], [], 1.0)[0]:
            line = proc.stderr.readline().decode()
            if not line and proc.poll() is not None:
                break
            seen.append(line.rstrip("\n"))
            if want(seen):
                return seen
    raise AssertionError(f"never saw the expected lines: {seen[-10:]}")


def _wait_content(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    read = lambda: path.read_text() if path.exists() else None  # noqa: E731
    while read() != text:
        assert time.monotonic() < deadline, f"{path} holds {read()!r}, not {text!r}"
        time.sleep(0.1)


class Recorder:
    """A `deskpilot record` process and a real VNC client connected with the password it printed."""

    def __init__(self, cwd: Path, args: list[str]) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(DESKPILOT + ["record", *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, bufsize=0)
        self.lines = _wait_lines(self.proc, lambda seen: any(line.startswith("recording:") for line in seen))
        password, port = next(URL.match(line).groups() for line in self.lines if URL.match(line))
        self.client = connect(int(port), password)
        self.last = (0, 0)  # where click_text clicked last

    def click_text(self, text: str, timeout: float = 60.0, index: int = 0) -> None:
        """Click the middle of the OCR line that reads ``text`` on the VNC framebuffer (as a person aims)."""
        from deskpilot.perception import ocr

        deadline = time.monotonic() + timeout
        while True:
            screen = framebuffer(self.client)
            lines = ocr.read_text(screen)
            found = [line for line in lines if line.text.strip() == text] or ocr.match(lines, text)
            if found:
                break
            assert time.monotonic() < deadline, f"{text!r} never showed; read: {[t.text for t in ocr.read_text(screen)]}"
        x, y = self.last = sorted(found, key=lambda line: line.box[1])[index].center
        self.client.mouseMove(x, y)
        self.client.mousePress(1)

    def click_field(self, x: int, y: int, timeout: float = 60.0) -> None:
        """Click into a text field and wait until the field shows it (its focus ring and caret drawn): the app
        has taken the focus, so keys typed next go there (on a loaded machine, keys sent right after the
        click over VNC were seen landing in the field focused before)."""
        from PIL import ImageChops

        box = (max(0, x - 120), max(0, y - 20), x + 120, y + 20)
        before = framebuffer(self.client).crop(box)
        self.client.mouseMove(x, y)
        self.client.mousePress(1)
        deadline = time.monotonic() + timeout
        while ImageChops.difference(framebuffer(self.client).crop(box), before).getbbox() is None:
            assert time.monotonic() < deadline, f"the click at {(x, y)} never showed in the field"

    def wait_text(self, text: str, timeout: float = 60.0) -> None:
        """Until OCR reads ``text`` on the VNC framebuffer."""
        from deskpilot.perception import ocr

        deadline = time.monotonic() + timeout
        while not ocr.match(ocr.read_text(screen := framebuffer(self.client)), text):
            assert time.monotonic() < deadline, f"{text!r} never showed; read: {[t.text for t in ocr.read_text(screen)]}"

    def wait_gone(self, text: str, timeout: float = 60.0) -> None:
        """Until OCR no longer reads ``text`` on the VNC framebuffer (the input before it has reached the
        server: VNC input is asynchronous, and a recording stopped before then never sees it)."""
        from deskpilot.perception import ocr

        deadline = time.monotonic() + timeout
        while ocr.match(ocr.read_text(framebuffer(self.client)), text):
            assert time.monotonic() < deadline, f"{text!r} still shows"

    def stop(self) -> tuple[int, str, str]:
        """Ctrl-C to the recorder: its exit code, stdout and stderr."""
        try:
            self.client.disconnect()
            os.killpg(self.proc.pid, signal.SIGINT)
            out, err = self.proc.communicate(timeout=180)
        finally:
            self.kill()
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _fresh_notes(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text("")
    return notes


def _replay(tmp_path: Path, flow: str = "flow.yaml") -> None:
    check = subprocess.run(DESKPILOT + ["workflow", "check", flow], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    replay = subprocess.run(DESKPILOT + ["workflow", "run", flow, "--out", "replay"], cwd=tmp_path, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stdout[-1500:] + replay.stderr[-1500:]


MOUSEPAD = ["--app", "mousepad work/notes.txt", "--share", "work", "--size", "1024x700"]


def test_record_turns_menu_clicks_into_element_steps_that_replay(tmp_path):
    """mousepad's menus are on the accessibility bus: File and Save become role-and-name steps."""
    notes = _fresh_notes(tmp_path)
    rec = Recorder(tmp_path, ["--out", "flow.yaml", *MOUSEPAD, "--run-dir", "rec"])
    try:
        rec.client.mouseMove(512, 400)
        rec.client.mousePress(1)
        type_text(rec.client, "by menu")
        rec.click_text("File")
        rec.click_text("Save")  # in the menu that opened
        _wait_content(notes, "by menu")
    finally:
        code, out, err = rec.stop()
    assert code == 0, err[-2000:]
    steps = yaml.safe_load((tmp_path / "flow.yaml").read_text())["steps"]
    assert {"click": {"role": "menu", "name": "File"}} in steps, steps
    assert {"click": {"role": "menuitem", "name": "Save", "exact": True}} in steps, steps
    assert {"type": "by menu"} in steps
    assert next(s for s in steps if "click" in s)["click"] == [500, 571]  # the text area: a place, not a widget
    notes.write_text("")
    _replay(tmp_path)
    assert notes.read_text() == "by menu"


def test_record_waits_for_a_dialog_by_its_role_and_the_workflow_replays(tmp_path):
    """ctrl+o opens GTK's file chooser: the recording waits for it by role and name, not by its title bar."""
    _fresh_notes(tmp_path)
    rec = Recorder(tmp_path, ["--out", "flow.yaml", *MOUSEPAD, "--run-dir", "rec"])
    try:
        rec.client.mouseMove(512, 400)
        rec.client.mousePress(1)
        rec.client.keyDown("ctrl")
        rec.client.keyPress("o")
        rec.client.keyUp("ctrl")
        rec.wait_text("Cancel")  # the dialog is up, as a person would see before acting in it
        rec.client.keyPress("esc")
        rec.wait_gone("Cancel")  # and closed again before the person ends the recording
    finally:
        code, out, err = rec.stop()
    assert code == 0, err[-2000:]
    steps = yaml.safe_load((tmp_path / "flow.yaml").read_text())["steps"]
    waits = [s["wait_for"] for s in steps if "wait_for" in s]
    assert waits and waits[0]["role"] in ("file chooser", "dialog") and waits[0]["name"], steps
    assert not any("wait_for_window" in s and s["wait_for_window"] == waits[0]["name"] for s in steps), steps
    _replay(tmp_path)


def test_record_on_mousepad_writes_a_workflow_that_reproduces_the_file(tmp_path):
    """Also: --out in another folder, and the run folder's recorded.yaml: a workflow's paths stay relative to
    where record ran (workflows resolve them where they run), so both replay from there."""
    work = tmp_path / "work"
    work.mkdir()
    notes = work / "notes.txt"
    notes.write_text("")
    (tmp_path / "flows").mkdir()
    proc = subprocess.Popen(DESKPILOT + ["record", "--out", "flows/flow.yaml", "--app", "mousepad work/notes.txt",
                                         "--share", "work", "--size", "1024x700", "--run-dir", "runs/rec"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, bufsize=0)  # unbuffered: select() sees every line
    try:
        lines = _wait_lines(proc, lambda seen: any(line.startswith("recording:") for line in seen))
        password, port = next(URL.match(line).groups() for line in lines if URL.match(line))
        client = connect(int(port), password)
        try:
            client.mouseMove(512, 400)
            client.mousePress(1)
            type_text(client, "hello recorder")
            client.keyPress("enter")
            type_text(client, "line two")
            client.keyPress("ctrl-s")
            _wait_content(notes, "hello recorder\nline two")
        finally:
            client.disconnect()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    flow = yaml.safe_load((tmp_path / "flows" / "flow.yaml").read_text())
    assert flow["desktop"] == {"size": "1024x700", "apps": ["mousepad work/notes.txt"], "shares": ["work"]}
    steps = flow["steps"]
    assert {"type": "hello recorder\nline two"} in steps and {"key": "ctrl+s"} in steps
    assert any("click" in s for s in steps) and any("wait_for_window" in s for s in steps)
    assert steps[-1] == {"check": {"file": "work/notes.txt", "exact_match": "hello recorder\nline two"}}
    kept = yaml.safe_load((tmp_path / "runs" / "rec" / "recorded.yaml").read_text())
    assert kept["desktop"] == flow["desktop"] and kept["steps"] == steps
    run = load_run(tmp_path / "runs" / "rec")
    assert len(run.humans) == len(steps) and (tmp_path / "runs" / "rec" / "report.html").is_file()
    for replayed in ("flows/flow.yaml", "runs/rec/recorded.yaml"):
        notes.write_text("")  # a fresh start: the workflow must write the file again
        _replay(tmp_path, replayed)
        assert notes.read_text() == "hello recorder\nline two"


def _key(keysym: str, char: str = "", state: int = 0, t: float = 0.0) -> Seen:
    return Seen(event=InputEvent(kind="key_press", detail=0, x=0, y=0, state=state, time=t, keysym=keysym,
                                 base_key=keysym.lower(), char=char))


def _click(x: int, y: int, t: float, button: int = 1, windows=None) -> Seen:
    return Seen(event=InputEvent(kind="button_press", detail=button, x=x, y=y, state=0, time=t), windows=windows or {})


def test_compile_rules_typing_backspace_chords_double_clicks_and_titles():
    seen = [_click(100, 50, 0.0, windows={1: "*App", 3: "Loaded doc"}), _click(101, 51, 0.2, windows={1: "*App"}),
            _key("h", "h"), _key("x", "x"), _key("BackSpace"), _key("Shift_L"), _key("I", "I", state=1),
            _key("Return"), _key("s", "s", state=4), _key("F5"),
            _click(500, 350, 2.0, button=3, windows={1: "*App", 2: "Dialog"})]
    steps = [c.step for c in compile_steps(seen, (1000, 700), text_at=lambda frame, x, y: None,
                                           initial={1: "App", 3: "doc"})]
    assert steps == [{"wait_for_window": "App"}, {"wait_for_window": "Loaded doc"},
                     {"click": [100, 71], "double": True}, {"type": "hI\n"},
                     {"key": "ctrl+s"}, {"key": "f5"}, {"wait_for_window": "Dialog"},
                     {"click": [500, 500], "button": "right"}]


def test_compile_waits_for_a_dialog_by_role_and_other_windows_by_title():
    seen = [_click(10, 10, 0.0, windows={1: "App"}),
            Seen(event=_click(20, 20, 1.0).event, windows={1: "App", 2: "Open File", 3: "Tool {x}"},
                 dialogs={"Open File": "file chooser"})]
    steps = [c.step for c in compile_steps(seen, (100, 100), text_at=lambda f, x, y: None, initial={1: "App"})]
    assert steps[1:] == [{"click": [100, 100]}, {"wait_for": {"role": "file chooser", "name": "Open File"}},
                         {"wait_for_window": "Tool {{x}}"}, {"click": [200, 200]}]


def test_dialogs_in_a_snapshot_are_its_top_level_dialogs():
    from deskpilot.perception.a11y import Node, Snapshot
    from deskpilot.record.compile import dialogs_in

    def node(i, parent, depth, role, name):
        return Node(index=i, parent=parent, depth=depth, path=f"app/{i}", app="app", role=role, name=name, ref=("a", f"/{i}"))

    tree = Snapshot(nodes=[node(0, None, 0, "application", "app"), node(1, 0, 1, "frame", "Main"),
                           node(2, 0, 1, "dialog", "Save As"), node(3, 2, 2, "dialog", "inner"),
                           node(4, 0, 1, "alert", "")], apps=["app"], elapsed=0.0)
    assert dialogs_in(tree) == {"Save As": "dialog"} and dialogs_in(None) == {}


def test_compile_uses_click_text_and_the_element_hook_first():
    from PIL import Image

    frame = Image.new("RGB", (100, 100))
    seen = [Seen(event=_click(10, 10, 0.0).event, frame=frame), Seen(event=_click(50, 50, 5.0).event, frame=frame)]
    steps = compile_steps(seen, (100, 100), text_at=lambda f, x, y: "Save" if x == 10 else None,
                          element_step=lambda item: {"click_element": "button 'OK'"} if item.event.x == 50 else None)
    assert [c.step for c in steps] == [{"click_text": "Save"}, {"click_element": "button 'OK'"}]
    assert json.dumps([c.step for c in steps])  # plain data, ready for YAML


def test_record_refuses_an_unknown_output_in_one_line(tmp_path):
    for args, says in ((["notes.txt"], "give NAME.yaml (a workflow), test_NAME.py"), (["notes.py"], "pytest collects"),
                       (["missing/flow.yaml"], "does not exist"), (["f.yaml", "--var", "novalue"], "give NAME=VALUE"),
                       (["f.yaml", "--secret", "DESKPILOT_UNSET_SECRET"], "is not set")):
        done = subprocess.run(DESKPILOT + ["record", "--out", *args], cwd=tmp_path, env=ENV,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    (tmp_path / "broken_suite.yaml").write_text("just: text\n")
    done = subprocess.run(DESKPILOT + ["record", "--out", "broken_suite.yaml"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not an eval suite" in done.stderr and "Traceback" not in done.stderr


def _demonstrate(rec: Recorder, notes: Path, text: str) -> None:
    """Click into mousepad's text, type ``text``, save with ctrl+s, wait for the file."""
    rec.client.mouseMove(512, 400)
    rec.client.mousePress(1)
    type_text(rec.client, text)
    rec.client.keyPress("ctrl-s")
    _wait_content(notes, text)


def test_record_writes_a_pytest_file_that_passes(tmp_path):
    notes = _fresh_notes(tmp_path)
    rec = Recorder(tmp_path, ["--out", "test_notes.py", *MOUSEPAD, "--run-dir", "rec"])
    try:
        _demonstrate(rec, notes, "from pytest")
    finally:
        code, out, err = rec.stop()
    assert code == 0, err[-2000:]
    assert "pytest: test_notes.py" in err and "try it: pytest test_notes.py" in err
    source = (tmp_path / "test_notes.py").read_text()
    assert "def test_notes(pilot):" in source and "pilot.type('from pytest')" in source
    assert "pilot.check({'file': 'work/notes.txt', 'exact_match': 'from pytest'})" in source
    assert (tmp_path / "rec" / "recorded.yaml").is_file()  # the run folder keeps the steps as a workflow too
    notes.write_text("")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_notes.py"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-1500:]
    assert notes.read_text() == "from pytest"
    notes.write_text("")  # and the check in it is real: a replay that writes something else fails
    broken = source.replace("pilot.type('from pytest')", "pilot.type('from pytesx')")
    (tmp_path / "test_broken.py").write_text(broken)
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_broken.py"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "exact" in done.stdout, done.stdout[-3000:]


def test_record_writes_an_eval_suite_task_that_passes(tmp_path):
    notes = _fresh_notes(tmp_path)
    rec = Recorder(tmp_path, ["--out", "suite.json", "--task", "Write by eval and save", *MOUSEPAD])
    try:
        _demonstrate(rec, notes, "by eval")
    finally:
        code, out, err = rec.stop()
    assert code == 0, err[-2000:]
    suite = json.loads((tmp_path / "suite.json").read_text())
    task = suite["tasks"][0]
    assert task["id"] == "suite" and task["task"] == "Write by eval and save"
    assert task["checks"] == [{"file": "work/notes.txt", "exact_match": "by eval"}]
    assert any("type(content='by eval')" in reply for reply in task["script"]) and "DONE()" in task["script"][-1]
    notes.write_text("")
    done = subprocess.run(DESKPILOT + ["eval", "suite.json", "--out", "results", "--quiet"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["passed"] == 1


def test_writers_pick_the_format_and_translate_each_step():
    from deskpilot.record.compile import Compiled
    from deskpilot.record.writers import output_format, pytest_source, script_replies, substitute

    assert [output_format(Path(n)) for n in ("flow.yaml", "a.yml", "test_a.py", "a_test.py", "suite.yaml",
                                             "my_suite.yml", "tasks.json")] == \
        ["workflow", "workflow", "pytest", "pytest", "suite", "suite", "suite"]
    steps = [Compiled(step={"wait_for_window": "Notes"}),
             Compiled(step={"click": {"role": "menuitem", "name": "Save", "exact": True}}, point={"click": [10, 20]}),
             Compiled(step={"click": [500, 500], "double": True}, point={"click": [500, 500], "double": True}),
             Compiled(step={"type": "it's {{x}} {who}\n"}), Compiled(step={"key": "ctrl+s"}),
             Compiled(step={"check": {"file": "w/n.txt", "exact_match": "{who}"}})]
    source = pytest_source("notes", {"size": "1000x600", "apps": ["mousepad w/n.txt"], "shares": ["w"]}, steps,
                           variables={"who": "Ann"})
    assert "apps=[shlex.join(['mousepad', str(HERE / 'w/n.txt')])], shares=['w'])" in source
    assert "pilot.get_by_role('menuitem', name='Save', exact=True).click(timeout=10)" in source
    assert "pilot.double_click(500, 300)" in source
    assert "pilot.type(\"it's {x} \" + VARS['who'] + '\\n')" in source
    assert "pilot.check({'file': 'w/n.txt', 'exact_match': VARS['who']})" in source
    compile(source, "test_notes.py", "exec")  # valid Python
    replies = script_replies(steps, {"who": "Ann"})
    assert "left_click(start_box='[10,20]')" in replies[0] and "left_double_click(start_box='[500,500]')" in replies[1]
    assert "type(content='it\\'s {x} Ann\\n')" in replies[2] and "key(keys='ctrl+s')" in replies[3]
    assert "DONE()" in replies[-1] and len(replies) == 5
    assert substitute("{a} {{b}} {c}", {"a": "1"}) == "1 {b} {c}"


FORM = str(Path(__file__).parent / "apps" / "signin_form.py")
SECRET = "pw-s3cret"


def _page_post(url: str, body: dict) -> dict:
    import urllib.request

    request = urllib.request.Request(url.rstrip("/") + "/record", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def _page_state(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url.rstrip("/") + "/state.json", timeout=30) as reply:
        return json.loads(reply.read())["record"]


def _wait_events(url: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _page_state(url)["events"]) < count:
        assert time.monotonic() < deadline, f"the recorder has {seen} events, not {count}"
        time.sleep(0.05)


def _wait_message(url: str, start: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not (message := _page_state(url)["message"]).startswith(start):
        assert time.monotonic() < deadline, f"the page says {message!r}, not {start!r}..."
        time.sleep(0.1)
    return message


def test_record_checks_variables_and_a_password_field_from_the_page(tmp_path):
    """On a GTK3 form: "Add check" turns the next click into a check (and the app never gets it), "Check saved
    files" a file check, --var user=ann typed "ann" into {user}, the password field's text into {PASSWORD}:
    its value is nowhere in what was written, and the workflow replays with other values."""
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out.txt"
    out.write_text("")  # an existing file: the app's argument is resolved to it inside the share
    rec = Recorder(tmp_path, ["--out", "flow.yaml", "--app", f"/usr/bin/python3 {FORM} work/out.txt", "--share", "work",
                              "--size", "800x600", "--run-dir", "rec", "--var", "user=ann", "--live"])
    try:
        url = next(line.split("live view: ")[1].strip() for line in rec.lines if "live view: " in line)
        rec.click_text("User")  # the label: its entry is to the right
        rec.client.mouseMove(rec.last[0] + 120, rec.last[1])
        rec.client.mousePress(1)
        type_text(rec.client, "ann")
        _wait_events(url, 5)  # as a person pauses: the recorder reads the focus at a burst's first key
        rec.client.keyPress("tab")
        type_text(rec.client, SECRET)
        _wait_events(url, 6 + len(SECRET))
        rec.click_text("Sign in", index=-1)  # the button, below the window's title
        _wait_content(out, f"ann:{SECRET}")
        assert _page_post(url, {"do": "check"})["message"].startswith("click what to check")
        rec.click_text("Remember me")  # grabbed: the check box must not toggle
        _wait_message(url, "check added")
        assert _page_post(url, {"do": "check"})["message"].startswith("click what to check")
        rec.click_text("Signed in as ann")
        _wait_message(url, "check added: {\"element\": {\"role\": \"label\"")
        assert _page_post(url, {"do": "files"})["message"] == "file check(s) added: work/out.txt"
    finally:
        code, _, err = rec.stop()
    assert code == 0, err[-2000:]
    assert "set the environment variable PASSWORD to replay" in err
    flow = yaml.safe_load((tmp_path / "flow.yaml").read_text())
    assert flow["vars"] == {"user": "ann"} and flow["secrets"] == ["PASSWORD"]
    steps = flow["steps"]
    assert {"type": "{user}"} in steps and {"key": "tab"} in steps and {"type": "{PASSWORD}"} in steps, steps
    assert {"click": {"role": "button", "name": "Sign in"}} in steps
    checks = [s["check"] for s in steps if "check" in s]
    assert checks == [{"element": {"role": "checkbox", "name": "Remember me"}, "state": "unchecked"},
                      {"element": {"role": "label", "name": "Signed in as {user}"}, "state": "visible"},
                      {"file": "work/out.txt", "exact_match": "{user}:{PASSWORD}"}], checks
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and p != out and SECRET.encode() in p.read_bytes()]
    assert not leaks, leaks
    out.write_text("")
    replay = subprocess.run(DESKPILOT + ["workflow", "run", "flow.yaml", "--var", "user=bob", "--out", "replay"],
                            cwd=tmp_path, env={**ENV, "PASSWORD": "hunter-2"}, capture_output=True, text=True,
                            timeout=300)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-1500:]
    assert out.read_text() == "bob:hunter-2"


def test_compile_writes_secret_bursts_by_name_and_marks_variables():
    from deskpilot.record.compile import mark_values

    seen = [_key("a", "a", t=0.0), _key("n", "n"), Seen(event=_key("Tab").event),
            Seen(event=_key("p", "p").event, secret="PASSWORD"), Seen(event=_key("w", "w").event, secret="PASSWORD"),
            Seen(event=_key("Return").event, step={"check": {"text_visible": "Hi an, {x}"}})]
    steps = mark_values(compile_steps(seen, (100, 100)), {"user": "an", "PASSWORD": "pw"})
    assert [c.step for c in steps] == [{"type": "{user}"}, {"key": "tab"}, {"type": "{PASSWORD}"},
                                       {"check": {"text_visible": "Hi {user}, {x}"}}]


def test_a_secret_read_off_a_late_frame_into_a_click_text_is_not_written():
    """Under load a click's frame can already show text typed after it: the click text it yields must not
    carry a secret's value (a run on a loaded machine wrote "click_text: zedzz-pw-s3cret")."""
    from deskpilot.record.compile import Compiled, mark_values

    steps = mark_values([Compiled(step={"click_text": "zedzz-pw-s3cret"}), Compiled(step={"type": "{PASSWORD}"})],
                        {"who": "zed", "PASSWORD": "zz-pw-s3cret"})
    assert [c.step for c in steps] == [{"click_text": "{who}{PASSWORD}"}, {"type": "{PASSWORD}"}]


def test_record_on_calc_types_in_a_cell_saves_by_keys_and_replays_the_workbook(tmp_path):
    """LibreOffice Calc: a number typed into A1, saved with ctrl+s (the sandbox's profile does not ask which
    format to keep); the workflow ends with the changed cell as an xlsx_cell check and rewrites the
    workbook on a fresh sandbox."""
    import openpyxl

    work = tmp_path / "work"
    work.mkdir()
    book = work / "book.xlsx"

    def fresh() -> None:
        wb = openpyxl.Workbook()
        wb.active["B1"] = "total"
        wb.save(book)

    def a1():
        wb = openpyxl.load_workbook(book, data_only=True)
        try:
            return wb.active["A1"].value
        finally:
            wb.close()

    fresh()
    rec = Recorder(tmp_path, ["--out", "flow.yaml", "--app", "localc work/book.xlsx", "--share", "work",
                              "--size", "1024x700", "--run-dir", "rec", "--no-ocr"])
    try:
        rec.wait_text("total", timeout=180)  # the sheet is up
        type_text(rec.client, "42")
        rec.client.keyPress("enter")
        rec.client.keyPress("ctrl-s")
        deadline = time.monotonic() + 120
        while (book.stat().st_size == 0 or _quiet(a1) != 42):
            assert time.monotonic() < deadline, "the workbook was never saved with A1 = 42"
            time.sleep(0.2)
    finally:
        code, _, err = rec.stop()
    assert code == 0, err[-2000:]
    steps = yaml.safe_load((tmp_path / "flow.yaml").read_text())["steps"]
    assert {"type": "42\n"} in steps and {"key": "ctrl+s"} in steps, steps
    assert steps[-1] == {"check": {"file": "work/book.xlsx", "xlsx_cell": {"cell": "A1", "equals": 42}}}, steps
    assert {"wait_for_window": "book.xlsx - LibreOffice Calc"} in steps, steps
    fresh()
    _replay(tmp_path)
    assert a1() == 42


def _quiet(read):
    """``read()``, or None while the file is being written (LibreOffice writes it in place)."""
    try:
        return read()
    except Exception:
        return None


def test_file_checks_name_changed_workbook_cells_texts_and_other_files(tmp_path):
    import openpyxl

    from deskpilot.record.files import changed_files, file_checks, share_files, workbooks

    wb = openpyxl.Workbook()
    wb.active["A1"] = "same"
    wb.save(tmp_path / "b.xlsx")
    (tmp_path / "n.txt").write_text("old")
    before = share_files([tmp_path])
    cells = workbooks(before)
    wb.active["B2"] = 7
    wb.create_sheet("Two")["C3"] = "{x}"
    wb.save(tmp_path / "b.xlsx")
    (tmp_path / "n.txt").write_text("new {v}\n")
    (tmp_path / "blob.bin").write_bytes(b"\xff\x00")
    (tmp_path / ".~lock.b.xlsx#").write_text("lock")
    changed = changed_files(before, share_files([tmp_path]))
    assert [p.name for p in changed] == ["b.xlsx", "blob.bin", "n.txt"]
    got = [c for p in changed for c in file_checks(p, tmp_path, cells.get(p))]
    assert got == [{"file": "b.xlsx", "xlsx_cell": {"cell": "B2", "equals": 7}},
                   {"file": "b.xlsx", "xlsx_cell": {"sheet": "Two", "cell": "C3", "equals": "{{x}}"}},
                   {"file": "blob.bin", "exists": True}, {"file": "n.txt", "exact_match": "new {{v}}"}]


def test_the_live_page_marks_a_variable_and_a_check_and_hand_back_ends_the_recording(tmp_path):
    """The Recording panel in headless Chromium: its own buttons mark a variable and arm a check; the next
    click over VNC becomes that check; 'Hand back' ends the recording and the file is written."""
    from chromium import CHROMIUM, Chromium

    if CHROMIUM is None:
        import pytest

        pytest.skip("chromium is not installed (scripts/setup.sh installs it)")
    work = tmp_path / "work"
    work.mkdir()
    (work / "out.txt").write_text("")
    rec = Recorder(tmp_path, ["--out", "flow.yaml", "--app", f"/usr/bin/python3 {FORM} work/out.txt", "--share",
                              "work", "--size", "800x600", "--live", "--no-check-files"])
    try:
        url = next(line.split("live view: ")[1].strip() for line in rec.lines if "live view: " in line)
        with Chromium(1400, 1000) as browser:
            browser.goto(url)
            browser.wait_for("document.getElementById('rec').hidden", lambda v: v is False, timeout=30)
            rec.click_text("User")
            rec.click_field(rec.last[0] + 120, rec.last[1])
            type_text(rec.client, "zed")
            rec.click_text("Password")  # a click on the password field, typing at once: its text is a secret
            rec.click_field(rec.last[0] + 120, rec.last[1])
            type_text(rec.client, "zz-" + SECRET)
            browser.eval("document.getElementById('rec-var-name').value = 'who';"
                         "document.getElementById('rec-var-value').value = 'zed';"
                         "document.getElementById('rec-var').click()")
            browser.wait_for("window.deskpilotLive.state.record.variables.join()", lambda v: v == "who")
            browser.eval("document.getElementById('rec-check').click()")
            browser.wait_for("document.getElementById('rec-check').textContent + ' | '"  # the message says why not
                             " + document.getElementById('rec-message').textContent", lambda v: v.startswith("Click what"))
            rec.click_text("Remember me")
            browser.wait_for("document.getElementById('rec-message').textContent",
                             lambda v: v.startswith("check added"), timeout=60)
            assert browser.eval("document.getElementById('handback').textContent") == "Stop recording"
            assert browser.eval("getComputedStyle(document.getElementById('screen')).display") == "none"  # noVNC only
            browser.eval("document.getElementById('handback').click()")
            code = rec.proc.wait(timeout=180)
    finally:
        rec.kill()
    assert code == 0, rec.proc.stderr.read().decode()[-2000:]
    flow = yaml.safe_load((tmp_path / "flow.yaml").read_text())
    assert flow["vars"] == {"who": "zed"} and {"type": "{who}"} in flow["steps"]
    assert flow["secrets"] == ["PASSWORD"] and {"type": "{PASSWORD}"} in flow["steps"], flow["steps"]
    assert not [str(p) for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert flow["steps"][-1] == {"check": {"element": {"role": "checkbox", "name": "Remember me"}, "state": "unchecked"}}


def test_pytest_files_and_suites_get_paths_relative_to_their_folder(tmp_path):
    from deskpilot.record.compile import Compiled
    from deskpilot.record.writers import portable_desktop, rebased

    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "n.txt").write_text("")
    (tmp_path / "tests").mkdir()
    desktop = {"size": "800x600", "apps": ["mousepad work/n.txt --opt x"], "shares": ["work"]}
    assert portable_desktop(desktop, tmp_path, tmp_path / "tests") == \
        {"size": "800x600", "apps": ["mousepad ../work/n.txt --opt x"], "shares": ["../work"]}
    steps = [Compiled(step={"check": {"file": "work/n.txt", "exists": True}}), Compiled(step={"key": "f5"})]
    assert [c.step for c in rebased(steps, tmp_path, tmp_path / "tests")] == \
        [{"check": {"file": "../work/n.txt", "exists": True}}, {"key": "f5"}]
    assert steps[0].step["check"]["file"] == "work/n.txt"  # the originals are left as they were


def test_a_window_mapped_after_a_late_read_event_waits_for_the_next_event():
    """ctrl+o read after its dialog mapped: the dialog is not listed at the ctrl+o (its wait would come first)
    but at the first event after its map, even when it has closed again by then."""
    from types import SimpleNamespace

    from deskpilot.record import Recording

    rec = Recording.__new__(Recording)
    rec._listed, rec._pending = {1}, {}
    rec._recorder = SimpleNamespace(mapped=set())
    assert rec._mapped_before({1: "notes", 2: "Open File"}) == {1: "notes"}  # ctrl: the stream is before the map
    assert rec._mapped_before({1: "notes", 2: "Open File"}) == {1: "notes"}  # o: still before it
    rec._recorder.mapped.add(2)  # the stream has passed the dialog's map
    assert rec._mapped_before({1: "notes"}) == {1: "notes", 2: "Open File"}  # escape, read after it closed
    assert rec._mapped_before({1: "notes"}) == {1: "notes"} and not rec._pending
    assert rec._mapped_before({1: "notes", 3: ""}) == {1: "notes"} and rec._pending == {3: ""}
    rec._recorder.mapped.add(3)
    assert rec._mapped_before({1: "notes", 3: "Titled later"}) == {1: "notes", 3: "Titled later"}


def test_wheel_notches_become_one_scroll_per_direction_and_place_and_every_format_has_it():
    from deskpilot.record.writers import _pytest_line, script_replies

    def notch(x, y, t, button):
        return Seen(event=InputEvent(kind="button_press", detail=button, x=x, y=y, state=0, time=t))

    seen = [notch(500, 350, 0.0, 5), notch(502, 351, 0.1, 5), notch(503, 352, 0.2, 5), notch(503, 352, 0.3, 4),
            notch(900, 100, 0.4, 4), _key("a", "a"), notch(900, 100, 0.6, 4)]
    steps = compile_steps(seen, (1000, 700), text_at=lambda f, x, y: None)
    assert [c.step for c in steps] == [
        {"scroll": [500, 500], "direction": "down", "amount": 3}, {"scroll": [503, 502], "direction": "up", "amount": 1},
        {"scroll": [900, 142], "direction": "up", "amount": 1}, {"type": "a"},
        {"scroll": [900, 142], "direction": "up", "amount": 1}]
    assert _pytest_line(steps[0].step, (1000, 700), None) == ["pilot.scroll(500, 350, direction='down', amount=3)"]
    reply = script_replies(steps[:1])[0]
    assert "<|begin_of_box|>scroll(start_box='[500,500]', direction='down', step=3)<|end_of_box|>" in reply
    from deskpilot.actions.parse import parse_glm_reply  # the reply is one the GLM-4.5V parser reads back

    action = parse_glm_reply(reply, None, width=1000, height=700).action
    assert (action.x, action.y, action.direction, action.amount) == (500, 350, "down", 3)


def test_record_turns_wheel_scrolling_over_vnc_into_a_scroll_step_that_replays(tmp_path):
    """A person scrolls over a Tk probe (wheel buttons 5 and 4 through a real VNC client): the workflow has
    the scrolls with their notches, and a replay gives the probe the same wheel events at the same points."""
    from test_workflow import WHEEL_APP

    (tmp_path / "work").mkdir()
    (tmp_path / "wheel.py").write_text(WHEEL_APP)
    log = tmp_path / "work" / "wheel.txt"
    rec = Recorder(tmp_path, ["--out", "flow.yaml", "--app", "python3 wheel.py work/wheel.txt", "--share", "work",
                              "--size", "800x600", "--run-dir", "rec"])
    try:
        rec.client.mouseMove(400, 150)
        for _ in range(3):
            rec.client.mousePress(5)
        rec.client.mouseMove(200, 300)
        rec.client.mousePress(4)
        want = "down 400 150\n" * 3 + "up 200 300\n"
        _wait_content(log, want)
    finally:
        code, out, err = rec.stop()
    assert code == 0, err[-2000:]
    steps = yaml.safe_load((tmp_path / "flow.yaml").read_text())["steps"]
    scrolls = [s for s in steps if "scroll" in s]
    assert steps[-1] == {"check": {"file": "work/wheel.txt", "exact_match": want.rstrip("\n")}}, steps  # waits in replay
    assert scrolls == [{"scroll": [500, 250], "direction": "down", "amount": 3},
                       {"scroll": [250, 500], "direction": "up", "amount": 1}], steps
    log.write_text("")
    _replay(tmp_path)
    _wait_content(log, want)


def test_a_drag_is_named_in_the_notes_not_silently_made_a_click():
    from deskpilot.record import Recording

    rec = Recording.__new__(Recording)
    rec.notes, rec._pressed_at = [], (10, 10)
    release = InputEvent(kind="button_release", detail=1, x=300, y=200, state=0, time=0.5)
    rec._note_drag(release)
    assert rec.notes and "drag from (10, 10) to (300, 200)" in rec.notes[0]
    rec._pressed_at = (10, 10)
    rec._note_drag(release.model_copy(update={"x": 12, "y": 11}))  # a click that shook a little
    assert len(rec.notes) == 1


def test_a_window_the_last_event_opened_is_waited_for_after_its_step():
    last = _key("o", "o", state=4)
    last.after = {7: "Open File"}
    last.dialogs = {"Open File": "file chooser"}
    steps = [c.step for c in compile_steps([_click(10, 10, 0.0), last], (100, 100), text_at=lambda f, x, y: None)]
    assert steps == [{"click": [100, 100]}, {"key": "ctrl+o"}, {"wait_for": {"role": "file chooser", "name": "Open File"}}]


def test_a_click_is_read_off_the_screen_as_it_was_at_the_press_however_late_the_recorder(tmp_path):
    """The press that changes the label under it: ``click_text`` names what the person clicked ("Open the
    box"), not what the click drew ("Box is open now"), even when the recorder reads the event a second late
    (a loaded machine): the press is held while the screen is grabbed, then goes on to the app."""
    from apps import APPS_DIR, EventLog, system_python

    from deskpilot.agent.desk.session import AppSpec, Session, SessionSpec
    from deskpilot.perception import ocr
    from deskpilot.record import Recording

    app = AppSpec(argv=[system_python(), str(APPS_DIR / "press_label.py")],
                  binds=[{"host": str(APPS_DIR), "writable": False}])
    with Session(spec=SessionSpec(size=(800, 600), apps=[app], accessibility=False)) as desk:
        log = EventLog(desk.apps[0].stdout_path)
        log.wait_for(lambda e: e["ev"] == "ready", timeout=30)
        ocr.wait_for_text(desk, "Open the box", timeout=30)
        recording = Recording(desk, elements=False)
        late = recording._windows

        def read_late():
            time.sleep(1.0)  # the recorder busy elsewhere: everything it reads at this event is late
            return late()

        recording._windows = read_late
        recording.start()
        try:
            (x, y) = ocr.find_text(desk, "Open the box")[0].center
            desk.click(x, y)
            log.wait_for(lambda e: e["ev"] == "pressed", timeout=30)  # the press reached the app
            ocr.wait_for_text(desk, "Box is open now", timeout=30)
            _wait_handled(recording, "button_press", 1)
        finally:
            recording.stop()
        steps = [compiled.step for compiled in recording.compile()]
    assert {"click_text": "Open the box"} in steps, steps
    presses = [e for e in recording._recorder.events if e.kind == "button_press"]
    assert len(presses) == 1, presses  # held and replayed, the press is still one press


def test_a_press_whose_screen_cannot_be_grabbed_still_reaches_the_app():
    """The held press is let go whatever happens to the screen grab: a click is never lost or stuck."""
    from apps import APPS_DIR, EventLog, system_python

    from deskpilot.agent.desk.session import AppSpec, Session, SessionSpec
    from deskpilot.perception import ocr
    from deskpilot.record.presses import PressFrames

    app = AppSpec(argv=[system_python(), str(APPS_DIR / "press_label.py")],
                  binds=[{"host": str(APPS_DIR), "writable": False}])
    with Session(spec=SessionSpec(size=(800, 600), apps=[app], accessibility=False)) as desk:
        log = EventLog(desk.apps[0].stdout_path)
        log.wait_for(lambda e: e["ev"] == "ready", timeout=30)
        presses = PressFrames(desk.sandbox.display, desk.sandbox.xauthority).start()
        try:
            assert presses.active, presses.error

            def broken():
                raise RuntimeError("no screen today")

            presses._capturer.grab = broken
            (x, y) = ocr.find_text(desk, "Open the box")[0].center
            desk.click(x, y)
            log.wait_for(lambda e: e["ev"] == "pressed", timeout=30)
            assert "no screen today" in presses.error
            assert presses.active  # and the next press is held again
        finally:
            presses.stop()


def test_typing_whose_focus_cannot_be_read_in_time_beside_a_password_field_is_written_as_a_secret(tmp_path,
                                                                                                 monkeypatch):
    """A loaded machine can cut the focus read short (the bus answers late): with a password field on the
    screen, the typing then counts as a secret and the notes say why, instead of the value going into the
    file in clear (a full-suite run beside a busy machine wrote the password as typed text)."""
    import deskpilot.record as record
    from deskpilot.agent.desk.session import AppSpec, Session, SessionSpec
    from deskpilot.perception import ocr

    out = tmp_path / "out.txt"
    app = AppSpec(argv=["/usr/bin/python3", FORM, str(out)], binds=[{"host": str(Path(FORM).parent), "writable": False}])
    with Session(spec=SessionSpec(size=(800, 600), shares=[str(tmp_path)], apps=[app])) as desk:
        ocr.wait_for_text(desk, "Remember me", timeout=60)
        recording = record.Recording(desk)
        recording.start()
        try:
            monkeypatch.setattr(record, "FOCUS_READ_S", 0.0)  # every focus read runs out of time
            (x, y) = ocr.find_text(desk, "User")[0].center
            desk.click(x + 120, y)
            desk.type("zed")
            _wait_handled(recording, "key_press", 3)
        finally:
            recording.stop()
        steps = [compiled.step for compiled in recording.compile()]
    assert {"type": "{PASSWORD}"} in steps, steps
    assert not any("zed" in json.dumps(step) for step in steps), steps
    assert any("could not be read in time" in note for note in recording.notes), recording.notes


def _wait_handled(recording, kind: str, count: int, timeout: float = 30.0) -> None:
    """Until the recorder's handler has taken ``count`` events of ``kind`` (it runs behind the input)."""
    deadline = time.monotonic() + timeout
    while len([item for item in recording.seen if item.event.kind == kind]) < count:
        assert time.monotonic() < deadline, f"the recorder handled {kind} events: {len(recording.seen)} seen in all"
        time.sleep(0.05)
