"""`launch_app` commands from an MCP client: argv only, never a host path bound into the sandbox.

A client's command is not the user's own text (it may be a model's output, or
come from anyone holding the server's token), so the `--app` rules of
`agent/desk/apps.py` (which show any named host file read-only) do not apply.
Here nothing is bound at all: the app sees the sandbox as it already is
(system folders and the user's `--share` folders), and the command may only
name paths it can see:

* a relative path resolves inside the shared folders (the first share that
  has it, else the first share), and may not climb out of it with `..`;
* an absolute path must lie in a share or a system folder, judged on the
  path as written (no link is resolved on the host: a link an app planted in
  a share points, inside the sandbox, at whatever the sandbox has there);
* anything else naming a host path is refused with one line.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence

from deskpilot.agent.desk.apps import SYSTEM_DIRS
from deskpilot.errors import UsageError


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _visible(path: str, shares: Sequence[str]) -> bool:
    return any(_inside(path, s) for s in shares) or (path.rstrip("/") + "/").startswith(SYSTEM_DIRS)


def _refuse(arg: str, shares: Sequence[str]) -> UsageError:
    where = ", ".join(shares) if shares else "none: the server was started without --share"
    return UsageError(f"{arg!r} is outside the shared folders ({where}); "
                      f"an MCP client can only name files in them")


def _relative(arg: str, shares: Sequence[str]) -> str | None:
    """The share path a relative argument names, or None when it is not a path at all."""
    if not shares:
        return None
    lexical = [os.path.normpath(os.path.join(s, arg)) for s in shares]
    # lexists: the name itself, links included, without following the last one
    found = next((p for p in lexical if os.path.lexists(p)), None)
    if found is None and "/" in arg and not arg.endswith("/"):
        parent = [p for p in lexical if os.path.isdir(os.path.dirname(p))]
        found = parent[0] if parent else None
    if found is None:
        return None
    if not any(_inside(found, s) for s in shares):
        raise _refuse(arg, shares)
    return found


def client_argv(command: str, shares: Sequence[str]) -> list[str]:
    """An MCP client's `launch_app` command -> argv for the sandbox (no binds; rules above)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"cannot read the command {command!r}: {exc}") from None
    if not argv:
        raise UsageError("the command is empty (give a program, e.g. xterm)")
    roots = [os.path.normpath(os.path.abspath(s)) for s in shares]
    out: list[str] = []
    for i, arg in enumerate(argv):
        if "\0" in arg:
            raise UsageError("the command contains a NUL character")
        if i == 0 and "/" not in arg:
            if shutil.which(arg) is None:
                raise UsageError(f"{arg!r} is not installed (not found on PATH)")
            out.append(arg)
        elif arg.startswith("-") or "://" in arg or "\n" in arg:
            out.append(arg)  # options and URLs are not paths
        elif arg.startswith("/") or arg.startswith("~"):
            path = os.path.normpath(arg) if arg.startswith("/") else arg
            if not path.startswith("/") or not _visible(path, roots):
                raise _refuse(arg, roots)
            out.append(path)
        else:
            resolved = _relative(arg, roots)
            if i == 0 and resolved is None:
                raise UsageError(f"program {arg!r} is not in the shared folders")
            out.append(resolved if resolved is not None else arg)
    if "/" in out[0] and not os.path.lexists(out[0]):
        raise UsageError(f"program {out[0]!r} does not exist")
    return out

