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
* Links inside a share are never followed (`resolve_named`): an app can plant
  ``share/x -> /etc/shadow``, so a path reaching into a share stays inside
  that share, where the share's own bind already shows it; nothing more is
  bound. Links outside every share (the user's and the system's) are followed.
* Only a path the user named is ever bound. A command built from data (a
  workflow's CSV row or an agent's answer, an MCP client's ``launch_app``:
  ``from_data=True``) may name paths inside the shares only; anything else
  is refused before the app starts.

Which arguments count as paths: anything with a ``/`` that exists or whose
folder exists, and bare names of files that exist in the working directory.
Options (``-x``, ``--calc``) and URLs are left alone.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from deskpilot.errors import UsageError

SYSTEM_DIRS = ("/usr/", "/etc/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/proc/", "/dev/", "/sys/")
OUTPUT = "output"  # key of a bind dict: the app will create a file in this folder


def _system(path: str) -> bool:
    return (path.rstrip("/") + "/").startswith(SYSTEM_DIRS)


_MAX_LINKS = 40  # as the kernel's own limit on links followed in one path


def _roots(shares: Iterable[str | Path]) -> dict[Path, Path]:
    """Each share as named and as resolved -> its resolved path (what the sandbox binds)."""
    roots: dict[Path, Path] = {}
    for share in shares:
        real = Path(os.path.realpath(os.path.expanduser(share)))
        roots[Path(os.path.abspath(os.path.expanduser(share)))] = real
        roots[real] = real
    return roots


def share_of(path: Path, shares: Iterable[str | Path]) -> Path | None:
    """The (resolved) share a resolved path lies in, deepest first; None outside every share."""
    inside = [r for r in set(_roots(shares).values()) if path == r or r in path.parents]
    return max(inside, key=lambda r: len(r.parts)) if inside else None


def resolve_named(path: str | Path, shares: Iterable[str | Path] = ()) -> tuple[Path, Path | None]:
    """Resolve an absolute path the way deskpilot may bind it -> (path, its share or None).

    Links are followed one folder at a time, as the kernel would, until the
    walk reaches a share: from there on nothing is followed (an app may have
    planted any link in a share) and the rest of the path is taken as written.
    So ``share/link -> /etc/shadow`` stays ``share/link``, inside the share.
    """
    roots = _roots(shares)
    reals = set(roots.values())
    pending = list(Path(os.path.abspath(os.path.expanduser(path))).parts[1:])
    here, hops = Path("/"), 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            here = here.parent
            continue
        step = here / part
        if step in roots:
            here = roots[step]  # a share as the user named it: its resolved path, as bound
            continue
        if any(here == r or r in here.parents for r in reals) or not step.is_symlink():
            here = step  # inside a share (never followed) or not a link
            continue
        hops += 1
        if hops > _MAX_LINKS:
            raise UsageError(f"{path}: too many levels of symbolic links")
        target = Path(os.readlink(step))
        if target.is_absolute():
            here = Path("/")
        pending = [*target.parts[1:], *pending] if target.is_absolute() else [*target.parts, *pending]
    return here, share_of(here, shares)


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


def _named_outside(what: str, path: Path, from_data: bool) -> None:
    if from_data:
        raise UsageError(f"{what} {path} is outside every shared folder, and it came from data (a CSV row, an "
                         f"answer, a client's request): only paths you name yourself are shown to apps")


def parse_command(command: str, *, cwd: str | Path | None = None, shares: Sequence[str | Path] = (),
                  from_data: bool | Collection[int] = False) -> tuple[list[str], list[dict[str, Any]]]:
    """An app command -> (argv, binds), paths resolved by `resolve_named` against ``shares``.

    ``binds`` are dicts ``{"host", "writable", "named"}`` (``named``: the path as
    written, made absolute; `plan_binds` resolves it again against the
    sandbox's shares); a bind with ``"output": True`` is the folder of a file
    the app is to create (allowed only inside a share). Paths inside a share
    need no bind and get none. ``from_data``: the command was not written by
    the user, so every path in it must lie inside a share; or the indexes of
    the arguments (0 = the program) that hold data (a workflow's row values).
    """

    def data(index: int) -> bool:
        return from_data is True or (not isinstance(from_data, bool) and index in from_data)

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"cannot read app command {command!r}: {exc}") from None
    if not argv:
        raise UsageError("an app needs a command, e.g. xterm")
    base = Path(os.path.abspath(cwd or os.getcwd()))
    program = argv[0]
    binds: list[dict[str, Any]] = []

    def add(host: Path, named: Path, output: bool = False) -> None:
        entry: dict[str, Any] = {"host": str(host), "writable": False, "named": str(named)}
        if output:
            entry[OUTPUT] = True
        if entry not in binds:
            binds.append(entry)

    if "/" not in program:
        if shutil.which(program) is None:
            raise UsageError(f"app {program!r} is not installed (not found on PATH)")
    else:
        found = Path(os.path.abspath(base / program))
        if not found.exists():
            raise UsageError(f"app {program!r} does not exist")
        if not _system(str(found)):  # keep symlinks of system programs (busybox-style tools need the name)
            real, share = resolve_named(found, shares)
            argv[0] = str(real)
            if share is None and not _system(str(real)):
                _named_outside("program", found, data(0))
                add(_visible_folder(real), found)
    for i, arg in enumerate(argv[1:], start=1):
        found_arg = _path_argument(arg, base)
        if found_arg is None:
            continue
        path, exists = found_arg
        if _system(str(path)):
            argv[i] = str(path)
            continue
        real, share = resolve_named(path, shares)  # the folder bind shows real paths
        argv[i] = str(real)
        if share is not None or _system(str(real)):
            continue
        _named_outside("path", path, data(i))
        if exists:
            add(_visible_folder(real), path)
        else:
            add(real.parent, path, output=True)
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
        writable = bool(entry.get("writable"))
        named = entry.get("named")
        if named is not None:  # resolved again here: links inside these shares are never followed
            real, covering = resolve_named(named, shares)
            if covering is None and _system(str(real)):
                continue
            host = real.parent if entry.get(OUTPUT) else _visible_folder(real)
        else:
            host, covering = resolve_named(entry["host"], shares)
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
