"""`deskpilot report | replay | locate | ask`: looking at runs and screens after the fact."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from deskpilot.cli.run import _user_errors, console, fail
from deskpilot.agent.config.spec import ConfigError, load_config


def report(run_dir: Path = typer.Argument(..., help="A run folder")) -> None:
    """Rebuild report.html for a run folder."""
    from deskpilot.agent.records.report import build_report

    try:
        path = build_report(run_dir)
    except (OSError, ValueError) as err:
        raise fail(str(err)) from None
    console.print(f"report: {path}")


def replay(
    run_dir: Path = typer.Argument(..., help="A run folder recorded by `deskpilot run` or `demo`"),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare each screen with the recording"),
    max_change: int = typer.Option(10, min=0, help="Largest changed region (pixels) that still counts as the same screen"),
    app: list[str] = typer.Option([], "--app", help="Start these apps instead of the recorded ones"),
    isolation: Optional[str] = typer.Option(None, help="Override the recorded isolation"),
) -> None:
    """Perform a recorded run again in a fresh sandbox, without a model."""
    from deskpilot.agent.records.replay import ReplayError, replay as do_replay, session_of
    from deskpilot.agent.desk.session import app_from_command

    try:
        spec = session_of(run_dir)
        if app:
            spec.apps = [app_from_command(a, shares=spec.shares) for a in app]
        if isolation:
            if isolation not in ("bwrap", "none"):
                raise ConfigError(f"--isolation is bwrap or none, got {isolation!r}")
            spec.isolation = "none" if isolation == "none" else "bwrap"
        started = time.monotonic()
        result = do_replay(run_dir, check=check, max_change=max_change, session=spec,
                           on_step=lambda n, total, px: console.print(
                               f"step {n}: " + ("not compared" if px is None else f"largest change {px} px")))
    except (ReplayError, *_user_errors()) as err:
        raise fail(str(err)) from None
    colour = "green" if result.ok else "red"
    console.print(f"[{colour}]{result.message}[/{colour}] ({time.monotonic() - started:.1f} s)")
    if not result.ok:  # the report shows the diff on the step where the replay stopped
        try:
            from deskpilot.agent.records.report import build_report

            console.print(f"report: {build_report(run_dir)}")
        except (OSError, *_user_errors()):
            pass
    raise typer.Exit(0 if result.ok else 1)


def _image_observation(image: Path):
    from PIL import Image, UnidentifiedImageError

    from deskpilot.perception.observation import Observation

    try:
        with Image.open(image) as img:
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise ConfigError(f"image {image} does not exist") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise ConfigError(f"{image} is not an image file") from None
    return Observation(image=rgb, timestamp=time.monotonic())


def _query_setup(image: Path, base_url, model, script, flavor, dialect=None):
    from deskpilot.agent.dialects import make_dialect

    obs = _image_observation(image)
    cfg = load_config({"base_url": base_url, "model": model, "script": script, "flavor": flavor, "dialect": dialect})
    return obs, cfg.make_backend(), make_dialect(cfg.backend.dialect)


# the model options locate and ask share (run has the same ones, with their defaults shown)
ImageArg = Annotated[Path, typer.Argument(help="A screenshot file")]
BaseUrl = Annotated[Optional[str], typer.Option(help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1")]
Model = Annotated[Optional[str], typer.Option(help="Served model name")]
Flavor = Annotated[Optional[str], typer.Option(help="Server kind: auto, vllm, sglang, zai, openai, transformers")]
Script = Annotated[Optional[Path], typer.Option(help="JSON list of recorded replies to use instead of a model")]
DialectOpt = Annotated[Optional[str], typer.Option(help="glm-4.5v (default), glm-4.1v or glm-5v")]


def locate(image: ImageArg, description: str = typer.Argument(..., help="What to find, e.g. 'the Save button'"),
           base_url: BaseUrl = None, model: Model = None, flavor: Flavor = None, script: Script = None,
           dialect: DialectOpt = None) -> None:
    """Print the pixel box (x1, y1, x2, y2) of DESCRIPTION in IMAGE, and its centre, as JSON."""
    from deskpilot.actions.parse import ParseError
    from deskpilot.agent.loop.queries import run_locate

    try:
        obs, backend, prompts = _query_setup(image, base_url, model, script, flavor, dialect)
        x1, y1, x2, y2 = run_locate(backend, prompts, obs, description)
    except ParseError as err:
        raise fail(f"the model gave no usable box: {getattr(err, 'message', err)}", 1) from None
    except _user_errors() as err:
        raise fail(str(err)) from None
    print(json.dumps({"box": [x1, y1, x2, y2], "center": [(x1 + x2) // 2, (y1 + y2) // 2]}))


def ask(image: ImageArg, question: str = typer.Argument(..., help="A question about the screen"),
        base_url: BaseUrl = None, model: Model = None, flavor: Flavor = None, script: Script = None,
        dialect: DialectOpt = None) -> None:
    """Print the model's answer to QUESTION about IMAGE."""
    from deskpilot.agent.loop.queries import run_ask

    try:
        obs, backend, prompts = _query_setup(image, base_url, model, script, flavor, dialect)
        print(run_ask(backend, prompts, obs, question))
    except _user_errors() as err:
        raise fail(str(err)) from None
