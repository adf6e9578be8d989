"""What scripts and CI read: stdout result, stderr progress, --json, exit codes, and --confirm's answers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend_fixtures import free_port
from deskpilot.cli.output import exit_code
from deskpilot.agent.records.models import RunResult, Status
from deskpilot.errors import BackendUnreachable
from deskpilot.model_backend import OpenAICompatibleBackend
from deskpilot.model_backend.types import ChatRequest, Message, TextPart

DESKPILOT = [sys.executable, "-m", "deskpilot.cli"]


def box(call: str, thought: str = "Next.") -> str:
    return f"{thought}\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def _run(tmp_path, replies, *args):
    script = tmp_path / "replies.json"
    script.write_text(json.dumps(replies))
    return subprocess.run([*DESKPILOT, "run", "the task", "--app", "xterm", "--size", "640x480", "--script",
                           str(script), *args], capture_output=True, text=True, timeout=120)


def test_result_on_stdout_progress_on_stderr_no_wrapping(tmp_path):
    out = tmp_path / ("a-rather-long-folder-name-that-a-terminal-of-eighty-columns-would-wrap-" * 2) / "run"
    proc = _run(tmp_path, [box("left_click(start_box='[500,500]')"),
                           box("FAIL()", "The dialog I need never appeared, so I give up.")], "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("\n") == 1  # exactly one line for scripts
    assert proc.stdout.startswith("FAIL after 2 step(s)") and f"run folder: {out} | report: {out}/report.html" in proc.stdout
    assert "step 1/30" in proc.stderr and "step 1/30" not in proc.stdout
    assert f"recording to {out}\n" in proc.stderr  # the long path is not broken over lines
    assert "the model's last thought: The dialog I need never appeared, so I give up." in proc.stderr


def test_json_result_and_the_exit_code_for_replies_that_never_parse(tmp_path):
    proc = _run(tmp_path, ["I think I should click somewhere."] * 3, "--json", "--out", str(tmp_path / "run"))
    assert proc.returncode == 3, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "ERROR" and result["error_kind"] == "parse" and result["exit_code"] == 3
    assert result["report"] == str(tmp_path / "run" / "report.html") and result["checks"] == []
    assert "did not parse after 3 tries" in result["reason"]


class _Refuses(BaseHTTPRequestHandler):
    def do_POST(self):
        body = b'{"error": {"message": "bad key"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_unreachable_and_refusing_servers_are_their_own_kind():
    request = ChatRequest(messages=[Message(role="user", content=[TextPart(text="hi")])])
    with pytest.raises(BackendUnreachable, match="cannot reach"):
        OpenAICompatibleBackend(f"http://127.0.0.1:{free_port()}/v1", "m", max_retries=0).complete(request)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(BackendUnreachable, match="refused the API key") as err:
            OpenAICompatibleBackend(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", api_key="k",
                                    max_retries=0).complete(request)
        assert err.value.status_code == 401
    finally:
        server.shutdown()
    codes = {kind: exit_code(RunResult(status=Status.ERROR, error_kind=kind)) for kind in ("parse", "unreachable", "action", None)}
    assert codes == {"parse": 3, "unreachable": 4, "action": 2, None: 2}
    assert exit_code(RunResult(status=Status.DONE)) == 0 and exit_code(RunResult(status=Status.MAX_STEPS)) == 1


@pytest.mark.parametrize("typed, expected", [("\n\n", ("no", "")), ("n\nwrong field\n", ("no", "wrong field")),
                                             ("y\n", "yes"), ("q\n", "quit")])
def test_confirm_offers_yes_no_quit_defaulting_to_no(monkeypatch, typed, expected):
    from deskpilot.actions.models import Click
    from deskpilot.cli.run import ask_on_terminal

    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    assert ask_on_terminal(1, Click(x=1, y=2), "Click it.") == expected


def test_declining_an_action_skips_it_and_tells_the_model_why(tmp_path):
    from deskpilot.agent.loop.agent import Agent
    from deskpilot.agent.desk.session import SessionSpec, app_from_command, open_sandbox, wait_until_ready
    from deskpilot.agent.records.trajectory import load_run
    from deskpilot.model_backend import ScriptedBackend
    from deskpilot.perception import Capturer

    answers = iter([("no", "that is the wrong window"), "yes"])
    backend = ScriptedBackend([box("left_click(start_box='[100,100]')"), box("left_click(start_box='[500,500]')"),
                               box("DONE()")])
    sb, _ = open_sandbox(SessionSpec(size=(640, 480), apps=[app_from_command("xterm")]))
    with sb:
        capturer = Capturer(sb)
        try:
            wait_until_ready(sb, capturer)
            with Agent(backend, sb, run_dir=tmp_path / "run", capturer=capturer,
                       confirm=lambda step, action, thought: next(answers)) as agent:
                result = agent.run("click")
        finally:
            capturer.close()
    assert result.status == Status.DONE
    steps = load_run(tmp_path / "run").steps
    assert not steps[0].policy.allowed and steps[0].policy.by == "user" and not steps[0].performed
    assert steps[0].policy.reason == "declined by the user: that is the wrong window"
    assert steps[1].performed
    prompt = " ".join(p.text for m in backend.requests[1].messages for p in m.content if hasattr(p, "text"))
    assert "that is the wrong window" in prompt  # the model hears why


def test_the_spinner_shows_how_long_the_model_has_been_thinking():
    from deskpilot.cli.output import Elapsed

    spinner = Elapsed("step 2/30: asking the model…")
    spinner.started -= 42.3
    assert str(spinner.__rich__()) == "step 2/30: asking the model… 42 s"
