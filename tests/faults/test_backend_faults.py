"""A model server that refuses, throttles, fails, hangs or answers garbage.

The server is fault_server.FaultServer (a simulator of a broken server, real
HTTP on 127.0.0.1). Each fault must give bounded retries, one line naming what
went wrong, and, under `deskpilot run`, a complete run folder (settings,
trajectory ending in an end record, screenshot, report).
"""

from __future__ import annotations

import json
import time

import pytest
from deskpilot.cli import app
from deskpilot.agent.dialects import GLM45VDialect
from deskpilot.agent.loop.queries import run_ask, run_locate
from deskpilot.agent.records.trajectory import load_run
from deskpilot.model_backend import OpenAICompatibleBackend
from deskpilot.perception.observation import Observation
from fault_server import FaultServer, closed_port_url, completion, garbage, hang, http, huge
from PIL import Image
from typer.testing import CliRunner

from deskpilot.errors import BackendError

runner = CliRunner()
DONE = "<|begin_of_box|>DONE(answer='ok')<|end_of_box|>"
GOOD = completion(DONE)

MALFORMED = {
    "choices [null]": ({**GOOD, "choices": [None]}, "choices[0] is null"),
    "no message": ({**GOOD, "choices": [{"index": 0, "finish_reason": "stop"}]}, "choices[0] has no message"),
    "content a number": (completion(5), "choices[0].message.content is int, not text"),
    "usage wrong types": (completion(DONE, usage={"prompt_tokens": "many", "completion_tokens": [1]}),
                          "usage.prompt_tokens is 'many' (str), not a whole number"),
    "usage a string": (completion(DONE, usage="lots"), "usage is str, not an object"),
    "reasoning a dict": (completion(DONE, reasoning={"x": 1}), "reasoning_content is dict, not text"),
    "empty choices": ({**GOOD, "choices": []}, "its choices list is empty"),
    "not a completion": ({"id": "x"}, "did not answer with an OpenAI chat completion"),
}


def _one_line_error(output: str) -> str:
    assert "Traceback" not in output and "validation error" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.fixture
def shot(tmp_path):
    path = tmp_path / "shot.png"
    Image.new("RGB", (400, 300), "white").save(path)
    return path


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_completion_is_one_line_naming_the_field(name, shot):
    body, expected = MALFORMED[name]
    with FaultServer([http(200, body)]) as server:
        result = runner.invoke(app, ["ask", str(shot), "what is it?", "--base-url", server.base_url])
    assert result.exit_code == 2
    assert expected in _one_line_error(result.output)
    assert server.hits == 1  # a malformed answer is not retried


def test_content_as_text_parts_is_accepted():
    body = completion([{"type": "text", "text": "It says "}, {"type": "text", "text": "hello."}])
    with FaultServer([http(200, body)]) as server:
        reply = OpenAICompatibleBackend(server.base_url, "glm-4.5v").complete(_request())
    assert reply.content == "It says hello." and reply.usage.total_tokens == 18


def _request():
    return GLM45VDialect().build_ask_request(_obs(), "what is it?")


def _obs() -> Observation:
    return Observation(image=Image.new("RGB", (64, 64), "white"), timestamp=time.monotonic())


def _fails(answers, match: str, max_retries: int = 3, timeout: float = 30.0) -> tuple[str, int, float]:
    with FaultServer(answers) as server:
        backend = OpenAICompatibleBackend(server.base_url, "glm-4.5v", max_retries=max_retries, timeout=timeout)
        started = time.monotonic()
        with pytest.raises(BackendError, match=match) as info:
            backend.complete(_request())
        return str(info.value), server.hits, time.monotonic() - started


def test_retry_after_an_hour_says_it_was_not_retried():
    message, hits, _ = _fails([http(429, {"message": "slow down"}, {"Retry-After": "3600"})],
                              r"asked to wait 3600 s before trying again, so it was not retried \(gave up after 1 try\)")
    assert hits == 1 and "4 tries" not in message


def test_429_and_5xx_are_retried_a_bounded_number_of_times_and_counted_truly():
    _, hits, elapsed = _fails([http(429, {"message": "busy"}, {"Retry-After": "0"})], r"HTTP 429 after 2 tries: busy",
                              max_retries=1)
    assert hits == 2
    _, hits, elapsed = _fails([http(502, "<html>bad gateway</html>", {"Content-Type": "text/html"})],
                              r"HTTP 502 after 3 tries", max_retries=2)
    assert hits == 3 and elapsed < 10


def test_a_truncated_body_is_not_called_unreachable():
    message, hits, _ = _fails([http(200, json.dumps(GOOD), length=5000)], "broke off or garbled its answer", max_retries=1)
    assert "is it running" not in message and "expected 5000" in message and hits == 2


def test_truncated_json_is_named_not_a_bare_decoder_message():
    message, hits, _ = _fails([http(200, json.dumps(GOOD)[:25])], "sent a body that is not valid JSON")
    assert message.count("\n") == 0 and "cut off" in message and hits == 1


def test_garbage_instead_of_http():
    message, hits, _ = _fails([garbage(b"\x00\x01hello\r\n\r\n")], "broke off or garbled its answer", max_retries=1)
    assert hits == 2


def test_a_refused_connection_asks_whether_the_server_runs():
    backend = OpenAICompatibleBackend(closed_port_url(), "glm-4.5v", max_retries=1)
    with pytest.raises(BackendError, match=r"cannot reach the model server .* \(2 tries\): is it running\?"):
        backend.complete(_request())


def test_ask_and_locate_have_one_deadline_for_all_tries():
    with FaultServer([hang()]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "glm-4.5v", max_retries=3, timeout=300)
        for query in (run_ask, run_locate):
            started = time.monotonic()
            with pytest.raises(BackendError, match=r"within the 1\.5 s limit for one (ask|locate) \(all tries included\)"):
                query(backend, GLM45VDialect(), _obs(), "the button", deadline_s=1.5)
            assert time.monotonic() - started < 6
    # without a given deadline the backend's per-try timeout bounds the whole call
    with FaultServer([hang()]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "glm-4.5v", max_retries=3, timeout=1)
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"within the 1 s limit for one ask"):
            run_ask(backend, GLM45VDialect(), _obs(), "what?")
        assert time.monotonic() - started < 5


# ---- the loop: `deskpilot run` against each fault -----------------------------------------------------------

RUN_FAULTS = {
    "refused": (None, "cannot reach the model server", None),
    "500": ([http(500, {"message": "boom"})], "HTTP 500 after 4 tries: boom", 4),
    "429 for an hour": ([http(429, {"message": "later"}, {"Retry-After": "3600"})], "not retried (gave up after 1 try)", 1),
    "hang": ([hang()], "step time limit of 2 s reached", None),
    "garbage": ([garbage(b"SPAM\r\n\r\n")], "broke off or garbled its answer", 4),
    "choices [null]": ([http(200, {**GOOD, "choices": [None]})], "choices[0] is null", 1),
    "truncated JSON": ([http(200, json.dumps(GOOD)[:40])], "not valid JSON", 1),
}


@pytest.mark.parametrize("name", RUN_FAULTS)
def test_a_run_against_a_broken_server_ends_cleanly_with_a_complete_run_folder(name, tmp_path):
    answers, expected, hits = RUN_FAULTS[name]
    out = tmp_path / "run"
    server = FaultServer(answers) if answers else None
    url = server.base_url if server else closed_port_url()
    started = time.monotonic()
    if server:
        server.__enter__()
    try:
        result = runner.invoke(app, ["run", "do it", "--base-url", url, "--size", "640x480", "--out", str(out), "--quiet",
                                     "--step-timeout", "2" if name == "hang" else "30"])
    finally:
        if server:
            server.__exit__(None, None, None)
    assert time.monotonic() - started < 60
    assert "Traceback" not in result.output
    status = "STOPPED" if name == "hang" else "ERROR"
    unreachable = name == "refused"  # its own exit code (4): nothing answered
    assert result.exit_code == (4 if unreachable else {"STOPPED": 1, "ERROR": 2}[status]), result.output
    assert status in result.output and expected in result.output
    if hits is not None:
        assert server.hits == hits
    run = load_run(out)
    assert run.skipped_lines == 0 and run.end is not None
    assert run.end.status.value == status and expected in run.end.reason and "\n" not in run.end.reason
    assert run.steps[0].error and expected in run.steps[0].error
    assert (out / run.steps[0].screenshot).is_file() and (out / "settings.json").is_file()
    assert expected.split(" (")[0] in (out / "report.html").read_text()


# ---- a reply too big to hold (issue 26: a 50 MB reply took `run` to 685 MB RSS) ----------------------------------

@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip bomb"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_huge_reply_is_not_read_past_the_cap(gzip, mode):
    import asyncio

    from deskpilot.model_backend.types import ChatRequest, Message, TextPart

    sent: list[int] = []
    request = ChatRequest(messages=[Message(role="user", content=[TextPart(text="hi")])])
    with FaultServer([huge(64 * 1024 * 1024, gzip=gzip, sent=sent)]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "glm-4.5v", max_reply_bytes=2 * 1024 * 1024)
        try:
            with pytest.raises(BackendError) as info:
                if mode == "sync":
                    backend.complete(request)
                else:
                    asyncio.run(backend.acomplete(request))
        finally:
            backend.close()
        deadline = time.monotonic() + 30
        while not sent and time.monotonic() < deadline:  # the server notices the hang-up
            time.sleep(0.05)
    message = str(info.value)
    assert "its answer passed 2 MB; stopped reading it there (1 try, not retried)" in message, message
    assert "\n" not in message and server.hits == 1
    assert sent and sent[0] < 24 * 1024 * 1024  # what crossed the wire: the cap plus socket buffers, not 64 MB


def test_a_reply_under_the_cap_still_works():
    with FaultServer([http(200, GOOD)]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "glm-4.5v", max_reply_bytes=64 * 1024)
        from deskpilot.model_backend.types import ChatRequest, Message, TextPart

        reply = backend.complete(ChatRequest(messages=[Message(role="user", content=[TextPart(text="hi")])]))
        backend.close()
    assert reply.content == DONE


# The command is started by this small interpreter, not by pytest: a child vforked straight from pytest
# starts its ru_maxrss at pytest's own high-water mark (the kernel carries the old memory's mark through
# exec), so late in a run the CLI "peaked" at 572 MiB. From here it starts near this script's ~10.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def _run_measured(args: list[str], folder, limit: float = 120) -> tuple[int, str, int]:
    """Run a command; its exit code, its output, and its own peak RSS in MiB."""
    import os
    import signal
    import subprocess
    import sys

    log, peak = folder / "cli-output.txt", folder / "peak-rss-kib"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _MEASURE, str(peak), *args],
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        code = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{args} still running after {limit} s") from None
    return code, log.read_text(), int(peak.read_text()) // 1024


def test_the_peak_measure_is_the_command_s_own_not_that_of_the_process_measuring(tmp_path):
    ballast = bytearray(400 * 1024 * 1024)
    for i in range(0, len(ballast), 4096):  # touched, so it is resident
        ballast[i] = 1
    code, _, peak_mib = _run_measured(["true"], tmp_path)
    assert code == 0 and peak_mib < 50, f"'true' measured {peak_mib} MiB"


def test_run_against_a_server_sending_64_mb_stays_small_and_says_why(tmp_path):
    """The real CLI in a subprocess against a 64 MB reply: before, it read all of it (a 50 MB reply: 685 MB RSS)."""
    import sys

    out = tmp_path / "run"
    with FaultServer([huge(64 * 1024 * 1024)]) as server:
        code, output, peak_mib = _run_measured([sys.executable, "-m", "deskpilot.cli", "run", "do it", "--base-url",
                                                server.base_url, "--size", "320x240", "--out", str(out), "--quiet"],
                                               tmp_path)
    assert code == 2, output
    assert "Traceback" not in output and "passed 16 MB; stopped reading it there" in output, output
    assert peak_mib < 400, f"peak RSS {peak_mib} MiB"
    run = load_run(out)
    assert run.end is not None and "passed 16 MB" in run.end.reason and "passed 16 MB" in run.steps[0].error
    assert server.hits == 1
