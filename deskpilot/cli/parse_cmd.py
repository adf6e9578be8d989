"""`deskpilot parse`: see how one raw model reply is understood, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from deskpilot.actions.parse import ParseError, parse_glm_reply


def step_json(step) -> dict:
    """The parsed step as plain JSON (the action in pixels plus its explanation)."""
    return {
        "action": step.action.model_dump(mode="json"),
        "points": [list(p) for p in step.action.points()],
        "model_points": [list(p) for p in step.model_points],
        "element_info": step.element_info,
        "thought": step.thought,
        "memory": step.memory,
        "reasoning": step.reasoning,
        "action_text": step.action_text,
    }


def _read_reasoning(path: Optional[Path]) -> Optional[str]:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        typer.echo(f"error: cannot read the reasoning file {path}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None


def parse(
    width: int = typer.Option(1920, "--width", min=1, max=100_000, help="Screen width in pixels."),
    height: int = typer.Option(1080, "--height", min=1, max=100_000, help="Screen height in pixels."),
    reasoning_file: Optional[Path] = typer.Option(
        None, "--reasoning-file", help="File with the reply's separate reasoning text."
    ),
) -> None:
    """Parse one raw GLM-4.5V reply from stdin and print the action as JSON."""
    reasoning = _read_reasoning(reasoning_file)
    content = sys.stdin.read()
    try:
        step = parse_glm_reply(content, reasoning, width=width, height=height)
    except ParseError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(step_json(step), ensure_ascii=False))
