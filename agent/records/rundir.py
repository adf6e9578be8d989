"""Run folders: the default name, and refusing one that already holds a run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from deskpilot.errors import RunFolderError

RECORD_FILES = ("trajectory.jsonl", "settings.json")


def trim_name(name: str) -> str:
    """A cut folder name without trailing punctuation (``...calculator.`` -> ``...calculator``)."""
    return name.rstrip("-_.,;:!? ")


def default_run_dir(task: str, base: Path | str | None = None) -> Path:
    """`runs/DATE-TASK`, with a ~N suffix when two runs start in the same second."""
    slug = "".join(c if c.isalnum() else "-" for c in task.lower())[:40].strip("-")
    slug = trim_name(slug) or "run"
    path = Path(base or "runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{slug}"
    n = 2
    while path.exists():
        path = path.with_name(f"{path.name.rsplit('~', 1)[0]}~{n}")
        n += 1
    return path


def claim_run_dir(run_dir: Path | str, *, create: bool = True) -> Path:
    """Make sure `run_dir` can take a new run: two runs never mix in one folder."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"run folder {path} is a file, not a folder")
    if any((path / name).exists() for name in RECORD_FILES):
        raise RunFolderError(f"{path} already holds a run: choose another run folder")
    if not create:  # checked early (before a sandbox starts); made when the run begins
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"cannot create run folder {path}: {err.strerror or err}") from None
    return path
