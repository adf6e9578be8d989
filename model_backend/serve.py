"""Launch a model server (vLLM, SGLang or `transformers serve`) and keep it up until Ctrl-C.

The command is always an argv list (never a shell string), and the recipe
flags are the ones Z.ai publishes for GLM-4.5V.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request
from enum import Enum
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from deskpilot.model_backend.base import BackendError
from deskpilot.sandbox import spawn

MAX_TP = 4
GLM_MODEL = "zai-org/GLM-4.5V"
GLM_FP8_MODEL = "zai-org/GLM-4.5V-FP8"
SERVED_NAME = "glm-4.5v"
VLLM_RECIPE = [
    "--tool-call-parser", "glm45", "--reasoning-parser", "glm45", "--enable-auto-tool-choice",
    "--allowed-local-media-path", "/",
    "--media-io-kwargs", '{"video": {"num_frames": -1}}', "--enable-expert-parallel",
    "--mm-encoder-tp-mode", "data", "--mm_processor_cache_type", "shm",
]
SGLANG_RECIPE = ["--tool-call-parser", "glm45", "--reasoning-parser", "glm45"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_WORKDIRS: dict[int, Path] = {}  # server pid -> its alias folder
_ERROR_LINE = re.compile(r"^\s*([A-Za-z_.]*(?:Error|Exception)):\s*(.+)$")
# GLM-4.5V's parsers (`--tool-call-parser glm45`, `--reasoning-parser glm45`) and its
# architecture (Glm4vMoe): vLLM 0.10.0 rejects the parser flag, 0.10.1.1 accepts it.
VLLM_NEEDS = {"vllm": "0.10.1.1", "transformers": "4.55"}
VLLM_INSTALL = "pip install -U 'deskpilot[vllm]'"
INSTALL_HINTS = {
    "vllm": f"vllm is not installed (no `vllm` on PATH): {VLLM_INSTALL} (needs NVIDIA GPUs)",
    "sglang": "sglang is not installed: pip install 'sglang[all]' (needs NVIDIA GPUs)",
    "transformers": "`transformers serve` is not installed: pip install 'deskpilot[transformers]'",
}


class Engine(str, Enum):
    vllm = "vllm"
    sglang = "sglang"
    transformers = "transformers"


class ServeOptions(BaseModel):
    engine: Engine = Engine.vllm
    model: str | None = None
    fp8: bool = False
    tensor_parallel_size: int = Field(default=4, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_model_len: int = Field(default=65536, ge=1)
    device: str = "cpu"
    served_model_name: str = SERVED_NAME
    extra_args: list[str] = Field(default_factory=list)

    def model_id(self) -> str:
        if self.model:
            return self.model
        if self.engine is Engine.transformers:
            raise BackendError("--engine transformers needs --model (e.g. a folder from `deskpilot tiny-checkpoint`)")
        return GLM_FP8_MODEL if self.fp8 else GLM_MODEL

    def served_name(self) -> str:
        """The name clients must send as `model`: the same for every engine (default glm-4.5v)."""
        if not _NAME.match(self.served_model_name) or ".." in self.served_model_name:
            raise BackendError(f"--served-model-name {self.served_model_name!r} must be a name like glm-4.5v or org/name")
        return self.served_model_name

    def model_folder(self) -> Path | None:
        """The model as a local folder, None for a hub id; BackendError for a folder that is not there.

        Something that looks like a path (absolute, ./, ../, ~ or several '/') must exist;
        `org/name` is a hub id unless such a folder exists.
        """
        model = self.model_id()
        path = Path(model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise BackendError(f"model folder {model} has no config.json: is it a checkpoint folder?")
            return path.resolve()
        looks_like_path = model.startswith(("/", ".", "~")) or model.count("/") > 1 or os.sep != "/" and os.sep in model
        if looks_like_path or path.exists():
            raise BackendError(f"model folder {model} does not exist" if not path.exists()
                               else f"model {model} is not a folder")
        return None

    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"


def _check_tp(opts: ServeOptions) -> None:
    if opts.engine is not Engine.transformers and opts.tensor_parallel_size > MAX_TP:
        raise BackendError(
            f"tensor parallel size {opts.tensor_parallel_size} is over {MAX_TP}: the vision tower's 12 heads "
            f"limit it to {MAX_TP}; add pipeline parallelism instead (e.g. -- --pipeline-parallel-size 2)"
        )


def _executable(engine: Engine, *, required: bool) -> list[str]:
    """argv prefix of the engine; the bare name when not required (dry run)."""
    if engine is Engine.sglang:
        if required and importlib.util.find_spec("sglang") is None:
            raise BackendError(INSTALL_HINTS["sglang"])
        return [sys.executable if required else "python3", "-m", "sglang.launch_server"]
    name = engine.value
    beside = Path(sys.executable).parent / name  # the venv's bin even when it is not on PATH
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None and required:
        raise BackendError(INSTALL_HINTS[name])
    return [found or name, "serve"]


def check_vllm_versions() -> None:
    """Refuse, in one line, a vLLM (or transformers) too old for GLM-4.5V, before starting it.

    An old vLLM would start, load for minutes, then stop on an unknown
    ``--tool-call-parser glm45``. Versions are read from the installed
    packages' metadata of this Python (where ``deskpilot[vllm]`` puts them);
    a ``vllm`` found only elsewhere on PATH cannot be read and is trusted.
    """
    from importlib.metadata import PackageNotFoundError, version

    for package, needed in VLLM_NEEDS.items():
        try:
            have = version(package)
        except PackageNotFoundError:
            continue
        from packaging.version import InvalidVersion, Version  # a dependency of vllm and transformers

        try:
            old = Version(have) < Version(needed)
        except InvalidVersion:
            continue
        if old:
            raise BackendError(f"{package} {have} is installed, GLM-4.5V under vLLM needs {package}>={needed} "
                               f"(the glm45 tool-call and reasoning parsers): {VLLM_INSTALL}")


def build_command(opts: ServeOptions, *, require_engine: bool = True) -> list[str]:
    """The server's argv, recipe flags included; extra args go last."""
    _check_tp(opts)
    model = opts.model_id()
    head = _executable(opts.engine, required=require_engine)
    if opts.engine is Engine.vllm and require_engine:
        check_vllm_versions()
    port = ["--port", str(opts.port), "--host", opts.host]
    if opts.engine is Engine.vllm:
        body = [model, "--tensor-parallel-size", str(opts.tensor_parallel_size), *VLLM_RECIPE,
                "--max-model-len", str(opts.max_model_len)]
    elif opts.engine is Engine.sglang:
        body = ["--model-path", model, "--tp-size", str(opts.tensor_parallel_size), *SGLANG_RECIPE,
                "--context-length", str(opts.max_model_len)]
    else:
        # `transformers serve` answers only to the name it was started with, and loads that name
        # as a path: it runs in a folder where the served name links to the checkpoint (see launch).
        opts.model_folder()
        body = [opts.served_name(), "--device", opts.device]
    if opts.engine is not Engine.transformers:
        opts.model_folder()
        body += ["--served-model-name", opts.served_name()]
    return [*head, *body, *port, *opts.extra_args]


def check_port(host: str, port: int) -> None:
    """BackendError if something already listens there (before the server is started)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise BackendError(f"port {port} on {host} is already in use (another server?): "
                                   f"stop it or choose another --port") from None
            raise BackendError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def alias_folder(opts: ServeOptions) -> Path:
    """A fresh working folder in which the served name links to the checkpoint folder."""
    folder = opts.model_folder()
    if folder is None:
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise BackendError(INSTALL_HINTS["transformers"]) from None
        try:  # the download the engine would do anyway, so the served name can point at it
            folder = Path(snapshot_download(opts.model_id()))
        except Exception as exc:  # hub errors of every kind: offline, missing repo, gated, disk full
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise BackendError(f"cannot get model {opts.model_id()}: {type(exc).__name__}: {first}") from None
    work = Path(tempfile.mkdtemp(prefix="deskpilot-serve-"))
    link = work / opts.served_name()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(folder, target_is_directory=True)
    return work


def launch(opts: ServeOptions, log_path: Path, env: dict[str, str] | None = None,
           cmd: list[str] | None = None) -> subprocess.Popen:
    """Check the port, then start the engine (in its alias folder for `transformers serve`)."""
    cmd = cmd or build_command(opts)
    check_port(opts.host, opts.port)
    cwd = alias_folder(opts) if opts.engine is Engine.transformers else None
    proc = start(cmd, log_path, env=env, cwd=cwd)
    if cwd is not None:
        _WORKDIRS[proc.pid] = cwd  # removed by stop()
    return proc


def health_urls(opts: ServeOptions) -> list[str]:
    root = opts.base_url().removesuffix("/v1")
    urls = [f"{root}/health"]
    return urls + [f"{root}/v1/models"] if opts.engine is Engine.sglang else urls


def is_healthy(urls: list[str]) -> bool:
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            continue
    return False


def _log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_error_line(log_path: Path) -> str:
    """The last `SomeError: message` line of a server log (its cause, in one line), or ''."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        found = _ERROR_LINE.match(line)
        if found:
            return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2).strip()}"[:300]
    return ""


def start(cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start the server in its own session so we alone decide when it stops."""
    log = open(log_path, "ab")
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    try:
        # the server gets SIGTERM if deskpilot itself dies (even by SIGKILL)
        return spawn.popen(cmd, death_signal=signal.SIGTERM, stdout=log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=cwd)
    finally:
        log.close()


def wait_healthy(proc: subprocess.Popen, urls: list[str], timeout: float, log_path: Path,
                 tick: Callable[[float], None] = lambda _elapsed: None) -> float:
    """Poll until healthy; return seconds taken. BackendError if it dies or times out."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if proc.poll() is not None:
            cause = log_error_line(log_path)
            raise BackendError(f"server exited with code {proc.returncode} before it was healthy"
                               + (f": {cause}" if cause else "") + f" (log: {log_path})")
        if is_healthy(urls):
            return elapsed
        if elapsed > timeout:
            raise BackendError(f"server not healthy after {timeout:g} s; log: {log_path}")
        tick(elapsed)
        time.sleep(0.5)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> int:
    """SIGINT the server's process group, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    code = proc.wait()
    workdir = _WORKDIRS.pop(proc.pid, None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)  # only our symlink lives there
    return code
