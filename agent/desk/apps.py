"""From a person's app command line to what the sandbox needs: argv and the host paths to show.

The same rules hold wherever an app is named (library, `deskpilot run --app`,
workflow files), because files going in and out of the sandbox is the point:

* Relative paths are resolved against the user's working directory (not the
  sandbox's private HOME) and made absolute, whether or not the file exists.
* A path inside a shared folder (``shares``, bound writable at the same path)
  needs nothing more: the app can read it, write it, or create it.
* An existing path outside every share is shown read-only (its folder, so
  sibling files and lock files resolve).
* A file that does not exist yet outside every share is an error: the app
  could never save it, and the user would find nothing after the run.
* A read-only bind never hides a share: shares below it are bound again,
  writable, after it; binds are applied parents first.

Which arguments count as paths: anything with a ``/`` that exists or whose
folder exists, and bare names of files that exist in the working directory.
Options (``-x``, ``--calc``) and URLs are left alone.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from deskpilot.errors import UsageError

SYSTEM_DIRS = ("/usr/", "/etc/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/proc/", "/dev/", "/sys/")
OUTPUT = "output"  # key of a bind dict: the app will create a file in this folder


def _system(path: str) -> bool:
    return (path.rstrip("/") + "/").startswith(SYSTEM_DIRS)


def _path_argument(arg: str, cwd: Path) -> tuple[Path, bool] | None:
    """(absolute path, exists) when ``arg`` names a host path, else None."""
    if not arg or arg.startswith("-") or "://" in arg or "\n" in arg or "\0" in arg:
        return None
    path = Path(os.path.abspath(cwd / Path(arg).expanduser()))
    if path.exists():
        return (path, True) if "/" in arg or path.is_file() else None
    if "/" in arg and not arg.endswith("/") and path.parent.is_dir():
        return path, False
    return None


def _visible_folder(path: Path) -> Path:
    """What to bind so the app sees ``path``: its folder, or the file itself next to / and /tmp."""
    folder = path if path.is_dir() else path.parent
    return path if len(folder.parts) <= 2 else folder


def parse_command(command: str, *, cwd: str | Path | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """A user's app command (their own text, never model output) -> (argv, binds).

    ``binds`` are dicts ``{"host", "writable"}``; a bind with ``"output": True``
    is the folder of a file the app is to create (allowed only inside a share,
    see `plan_binds`).
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"cannot read app command {command!r}: {exc}") from None
    if not argv:
        raise UsageError("an app needs a command, e.g. xterm")
    base = Path(os.path.abspath(cwd or os.getcwd()))
    program = argv[0]
    if "/" not in program:
        if shutil.which(program) is None:
            raise UsageError(f"app {program!r} is not installed (not found on PATH)")
    else:
        found = Path(os.path.abspath(base / program))
        if not found.exists():
            raise UsageError(f"app {program!r} does not exist")
        # keep symlinks of system programs (/bin/sh stays /bin/sh, busybox-style tools need the name)
        argv[0] = str(found if _system(str(found)) else Path(os.path.realpath(found)))
    binds: list[dict[str, Any]] = []

    def add(host: Path, output: bool = False) -> None:
        entry: dict[str, Any] = {"host": str(host), "writable": False}
        if output:
            entry[OUTPUT] = True
        if entry not in binds:
            binds.append(entry)

    if "/" in program and not _system(argv[0]):
        add(_visible_folder(Path(argv[0])))
    for i, arg in enumerate(argv[1:], start=1):
        found_arg = _path_argument(arg, base)
        if found_arg is None:
            continue
        path, exists = found_arg
        if _system(str(path)):
            argv[i] = str(path)
            continue
        if exists:
            path = Path(os.path.realpath(path))  # the folder bind shows real paths
            add(_visible_folder(path))
        else:
            path = Path(os.path.realpath(path.parent)) / path.name
            add(path.parent, output=True)
        argv[i] = str(path)
    return argv, binds


def _depth(path: Path) -> int:
    return len(path.parts)


def plan_binds(app_binds: Iterable[dict[str, Any]], shares: Sequence[str | Path]):
    """The Bind list to launch one app with, given the sandbox's writable shares.

    Drops read-only binds a share already covers (the share must win: a file
    in a shared folder is writable), refuses outputs outside every share,
    binds shares again after any read-only parent of theirs, parents first.
    """
    from deskpilot.sandbox import Bind

    roots = [Path(s).expanduser().resolve() for s in shares]
    planned: list[Bind] = []
    for entry in app_binds:
        host = Path(entry["host"]).expanduser().resolve()
        writable = bool(entry.get("writable"))
        covering = next((r for r in roots if host == r or host.is_relative_to(r)), None)
        if entry.get(OUTPUT):
            if covering is None:
                raise UsageError(f"{host} is not in a shared folder, so an app could not save a new file "
                                 f"there: share it (e.g. --share {host})")
            continue
        if covering is not None and not writable:
            continue
        bind = Bind(host=host, writable=writable)
        if bind not in planned:
            planned.append(bind)
        if not writable:
            for root in roots:
                if root != host and root.is_relative_to(host):
                    again = Bind(host=root, writable=True)
                    if again not in planned:
                        planned.append(again)
    return sorted(planned, key=lambda b: _depth(b.inside))  # stable: a share re-bound stays after its parent
