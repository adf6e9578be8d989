"""`deskpilot serve` and `deskpilot tiny-checkpoint`."""

from __future__ import annotations

import shlex
import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console

from deskpilot.model_backend.base import BackendError
from deskpilot.model_backend.serve import Engine, ServeOptions, build_command, health_urls, launch, stop, wait_healthy

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def _raise_interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def serve(
    engine: Annotated[Engine, typer.Option(help="Server engine; vllm/sglang need GPUs, transformers runs on CPU.")] = Engine.vllm,
    model: Annotated[Optional[str], typer.Option(help="Checkpoint (hub id or folder). Default: zai-org/GLM-4.5V.")] = None,
    fp8: Annotated[bool, typer.Option(help="Serve zai-org/GLM-4.5V-FP8 (fits 2 x H100 80GB).")] = False,
    tensor_parallel_size: Annotated[int, typer.Option(help="GPUs for tensor parallelism (at most 4).")] = 4,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 exposes it to the network).")] = "127.0.0.1",
    max_model_len: Annotated[int, typer.Option(help="Context length (vllm/sglang).")] = 65536,
    device: Annotated[str, typer.Option(help="Device for --engine transformers.")] = "cpu",
    served_model_name: Annotated[str, typer.Option(help="Name clients send as `model`, for every engine.")] = "glm-4.5v",
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to become healthy.")] = 1800.0,
    log_file: Annotated[Optional[Path], typer.Option(help="Where the server's output goes (default: a temp file).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the command and exit.")] = False,
    extra_args: Annotated[Optional[list[str]], typer.Argument(help="Extra engine arguments, after --.")] = None,
) -> None:
    """Start a GLM-4.5V server, wait until it is healthy, and keep it up until Ctrl-C."""
    try:
        opts = ServeOptions(engine=engine, model=model, fp8=fp8, tensor_parallel_size=tensor_parallel_size,
                            host=host, port=port, max_model_len=max_model_len, device=device,
                            served_model_name=served_model_name, extra_args=extra_args or [])
        cmd = build_command(opts, require_engine=not dry_run)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "-".join(str(p) for p in first["loc"]).replace("_", "-")
        raise _fail(f"--{where}: {first['msg'].removeprefix('Value error, ')}") from None
    except (BackendError, ValueError) as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    if dry_run:
        out.print(shlex.join(cmd), markup=False)
        return
    log_path = log_file or Path(tempfile.mkstemp(prefix=f"deskpilot-{engine.value}-", suffix=".log")[1])
    out.print(f"starting: {shlex.join(cmd)}", markup=False)
    out.print(f"server log: {log_path}", markup=False)
    _serve_until_interrupted(opts, cmd, log_path, ready_timeout)


def _serve_until_interrupted(opts: ServeOptions, cmd: list[str], log_path: Path, ready_timeout: float) -> None:
    try:
        proc = launch(opts, log_path, cmd=cmd)  # a taken port fails here, before any "healthy"
    except BackendError as exc:
        raise _fail(str(exc), 1) from None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Ctrl-C must stop us even if we were started with SIGINT ignored (a background job of a
    # non-interactive shell inherits that, and Python then installs no KeyboardInterrupt handler)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with err.status(f"waiting for {opts.engine.value} to become healthy...") as status:
            took = wait_healthy(proc, health_urls(opts), ready_timeout, log_path,
                                tick=lambda s: status.update(f"waiting for {opts.engine.value} to become healthy ({s:.0f} s)"))
        out.print(f"healthy after {took:.1f} s: {opts.base_url()} (model name: {opts.served_name()})", markup=False)
        out.print("press Ctrl-C to stop", markup=False)
        while proc.poll() is None:
            time.sleep(0.5)
        raise _fail(f"server exited with code {proc.returncode}; log: {log_path}", 1)
    except BackendError as exc:
        raise _fail(str(exc), 1) from None
    except KeyboardInterrupt:
        out.print("stopping the server...", markup=False)
    finally:
        code = stop(proc)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    out.print(f"server stopped (exit code {code})", markup=False)


def tiny_checkpoint(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the checkpoint into.")],
    seed: Annotated[int, typer.Option(help="Seed for the random weights.")] = 0,
) -> None:
    """Build a tiny random GLM-4.5V-architecture checkpoint (for tests and CPU development)."""
    try:
        from deskpilot.model_backend.tiny import build_tiny_checkpoint
    except ImportError as exc:
        raise _fail(f"needs {exc.name}: pip install 'deskpilot[transformers]'") from None
    try:
        started = time.perf_counter()
        path = build_tiny_checkpoint(out_dir, seed=seed)
    except ImportError as exc:
        raise _fail(f"needs {exc.name}: pip install 'deskpilot[transformers]'") from None
    except OSError as exc:
        raise _fail(f"cannot write {out_dir}: {exc.strerror}") from None
    out.print(f"tiny checkpoint written to {path} in {time.perf_counter() - started:.1f} s", markup=False)
