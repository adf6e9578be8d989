"""`deskpilot serve`: recipe flags, refusals, and a real `transformers serve` brought up and stopped."""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import typer
from typer.testing import CliRunner

from deskpilot.cli.backend_cmds import serve
from backend_fixtures import free_port, offline_env, tiny_checkpoint  # noqa: F401 (fixture)
from deskpilot.model_backend import ChatRequest, Message, OpenAICompatibleBackend, TextPart

RECIPE = [
    "--tensor-parallel-size 4", "--tool-call-parser glm45", "--reasoning-parser glm45", "--enable-auto-tool-choice",
    "--served-model-name glm-4.5v", "--allowed-local-media-path /",
    """--media-io-kwargs '{"video": {"num_frames": -1}}'""", "--enable-expert-parallel",
    "--mm-encoder-tp-mode data", "--mm_processor_cache_type shm", "--max-model-len 65536",
]


def invoke(*args: str):
    app = typer.Typer(add_completion=False)
    app.command()(serve)
    return CliRunner().invoke(app, list(args))


def test_dry_run_prints_the_vllm_recipe():
    res = invoke("--dry-run")
    assert res.exit_code == 0, res.output
    line = res.output.strip()
    argv = shlex.split(line)
    assert argv[0].endswith("vllm") and argv[1:3] == ["serve", "zai-org/GLM-4.5V"]
    for flag in RECIPE:
        assert f" {flag}" in line, flag
    assert argv[argv.index("--media-io-kwargs") + 1] == '{"video": {"num_frames": -1}}'


def test_dry_run_fp8_port_and_passthrough():
    res = invoke("--dry-run", "--fp8", "--tensor-parallel-size", "2", "--port", "9001", "--",
                 "--pipeline-parallel-size", "2")
    argv = shlex.split(res.output.strip())
    assert argv[2] == "zai-org/GLM-4.5V-FP8"
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"
    assert argv[argv.index("--port") + 1] == "9001"
    assert argv[-2:] == ["--pipeline-parallel-size", "2"]


def test_dry_run_sglang():
    argv = shlex.split(invoke("--engine", "sglang", "--dry-run").output.strip())
    assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
    assert argv[argv.index("--model-path") + 1] == "zai-org/GLM-4.5V"
    assert argv[argv.index("--tp-size") + 1] == "4"
    for flag, value in [("--tool-call-parser", "glm45"), ("--reasoning-parser", "glm45")]:
        assert argv[argv.index(flag) + 1] == value


@pytest.mark.parametrize("args,msg", [
    (["--tensor-parallel-size", "8"], "vision tower's 12 heads limit it to 4"),
    (["--engine", "transformers", "--dry-run"], "--engine transformers needs --model"),
])
def test_user_mistakes_exit_2_with_one_line(args, msg):
    res = invoke(*args)
    assert res.exit_code == 2
    assert msg in res.output and "Traceback" not in res.output


def test_served_model_name_and_missing_model_folder(tmp_path):
    argv = shlex.split(invoke("--dry-run", "--served-model-name", "my-glm").output.strip())
    assert argv[argv.index("--served-model-name") + 1] == "my-glm"
    res = invoke("--engine", "transformers", "--model", str(tmp_path / "nope"), "--dry-run")
    assert res.exit_code == 2 and res.output.strip() == f"error: model folder {tmp_path / 'nope'} does not exist"
    res = invoke("--engine", "transformers", "--model", str(tmp_path), "--port", str(free_port()))
    assert res.exit_code == 2 and res.output.strip() == f"error: model folder {tmp_path} has no config.json: is it a checkpoint folder?"
    res = invoke("--dry-run", "--served-model-name", "a b")
    assert res.exit_code == 2 and "must be a name like glm-4.5v" in res.output


def test_taken_port_fails_before_starting(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = invoke("--engine", "transformers", "--model", str(tmp_path), "--port", str(port))
    assert res.exit_code == 1 and "healthy" not in res.output
    assert f"port {port} on 127.0.0.1 is already in use" in res.output


def test_server_dying_is_reported_in_one_line(tmp_path):
    from deskpilot.model_backend.serve import start, wait_healthy
    from deskpilot.model_backend.base import BackendError

    log = tmp_path / "server.log"
    proc = start([sys.executable, "-c", "raise OSError('zai-org/nothing is not a local folder')"], log)
    with pytest.raises(BackendError) as info:
        wait_healthy(proc, ["http://127.0.0.1:9/health"], 30, log)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("server exited with code 1 before it was healthy: OSError: zai-org/nothing is not a local folder")


@pytest.mark.skipif(shutil.which("vllm") is not None, reason="vllm is installed here")
def test_missing_engine_gives_install_hint():
    res = invoke("--port", str(free_port()))
    assert res.exit_code == 2
    assert res.output.strip() == ("error: vllm is not installed (no `vllm` on PATH): "
                                  "pip install -U 'deskpilot[vllm]' (needs NVIDIA GPUs)")


def _stand_in_vllm(tmp_path, monkeypatch, vllm: str, transformers: str) -> None:
    """Simulator (no GPU here): a `vllm` on PATH and package metadata saying which versions are installed."""
    bin_dir, site = tmp_path / "bin", tmp_path / "site"
    bin_dir.mkdir()
    exe = bin_dir / "vllm"
    exe.write_text("#!/bin/sh\nexit 3\n")
    exe.chmod(0o755)
    for name, version in (("vllm", vllm), ("transformers", transformers)):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    monkeypatch.syspath_prepend(str(site))  # found before the real transformers
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # no vllm beside this "venv"


@pytest.mark.parametrize("vllm, transformers, words", [
    ("0.10.0", "4.56.1", "error: vllm 0.10.0 is installed, GLM-4.5V under vLLM needs vllm>=0.10.1.1 "
                         "(the glm45 tool-call and reasoning parsers): pip install -U 'deskpilot[vllm]'"),
    ("0.10.1.1", "4.54.0", "error: transformers 4.54.0 is installed, GLM-4.5V under vLLM needs transformers>=4.55 "),
])
def test_an_old_vllm_is_refused_before_it_starts(tmp_path, monkeypatch, vllm, transformers, words):
    _stand_in_vllm(tmp_path, monkeypatch, vllm, transformers)
    res = invoke("--port", str(free_port()), "--ready-timeout", "5")
    assert res.exit_code == 2, res.output
    assert res.output.startswith(words) and res.output.count("\n") == 1, res.output


def test_a_new_enough_vllm_passes_the_check(tmp_path, monkeypatch):
    from deskpilot.model_backend.serve import check_vllm_versions

    _stand_in_vllm(tmp_path, monkeypatch, "0.10.1.1", "4.56.1")
    check_vllm_versions()  # no error
    res = invoke("--port", str(free_port()), "--ready-timeout", "5", "--log-file", str(tmp_path / "log"))
    assert "needs vllm" not in res.output and "starting: " in res.output  # got as far as starting the stand-in


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_serve_transformers_comes_up_healthy_and_stops_on_ctrl_c(tiny_checkpoint, tmp_path):
    """The real `deskpilot serve` command, as a user runs it."""
    port = free_port()
    cmd = [sys.executable, "-m", "deskpilot.cli", "serve", "--engine", "transformers", "--model", str(tiny_checkpoint),
           "--port", str(port), "--ready-timeout", "120", "--log-file", str(tmp_path / "server.log")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=offline_env(tmp_path))
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("healthy after"):
                break
        assert lines and lines[-1].startswith("healthy after"), "".join(lines) + proc.stderr.read()[-2000:]
        assert f"http://127.0.0.1:{port}/v1 (model name: glm-4.5v)" in lines[-1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
        # the same --model as against the vLLM recipe, and no --flavor: the 422 on vLLM's extras is
        # detected once, the call repeated without them, and the backend remembers
        b = OpenAICompatibleBackend(f"http://127.0.0.1:{port}/v1", "glm-4.5v")
        request = ChatRequest(messages=[Message(role="user", content=[TextPart(text="hi")])], max_tokens=2)
        assert b.complete(request).usage.prompt_tokens > 0
        assert b.dropped_fields == {"skip_special_tokens"}
        assert b.complete(request).usage.prompt_tokens > 0
        b.close()
        # a second server on the same port fails before saying healthy, in one line
        again = subprocess.run([*cmd[:-2], "--log-file", str(tmp_path / "second.log")], capture_output=True,
                               text=True, timeout=60, env=offline_env(tmp_path))
        assert again.returncode == 1 and "healthy" not in again.stdout
        assert again.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use (another server?): stop it or choose another --port"
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "server stopped" in rest
        assert time.monotonic() - t < 15
        assert not _port_open(port)
    finally:
        if proc.poll() is None:  # SIGINT lets it stop its server; SIGKILL only as a last resort
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_hub_model_that_cannot_be_fetched_is_one_line(tmp_path):
    app = typer.Typer(add_completion=False)
    app.command()(serve)
    res = CliRunner().invoke(app, ["--engine", "transformers", "--model", "zai-org/no-such-model", "--port",
                                   str(free_port())], env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert res.exit_code == 1 and "healthy" not in res.output and "Traceback" not in res.output
    assert "error: cannot get model zai-org/no-such-model: LocalEntryNotFoundError" in res.output
