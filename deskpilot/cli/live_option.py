"""`--live [PORT]`: one option that is a flag (any free port) or takes a port.

Click 8 has options with an optional value (`is_flag=False, flag_value=...`),
but typer (0.29) ships its own copy of click's parser without that branch
and drops `is_flag`/`flag_value` with a DeprecationWarning, so the option
cannot be declared that way. Instead the commands that have `--live` use
`LiveCommand`, which rewrites their arguments before parsing: a bare
`--live` (not followed by a port number) becomes `--live 0`, and 0 means
"any free port". `--live 8765` and `--live=8765` parse as usual. The old
`--live --live-port N` spelling still works (`--live-port` is hidden).
"""

from __future__ import annotations

import re
from typing import Any, Optional, overload

import typer
from typer.core import TyperCommand

ANY_PORT = "0"
_PORT = re.compile(r"\d{1,5}")


_OPTIONAL_PORT = ("--live", "--vnc")


def expand_live(args: list[str]) -> list[str]:
    """`--live` (or `--vnc`) with no port number after it gets one: 0 (any free port). Stops at `--`."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        out.append(arg)
        if arg in _OPTIONAL_PORT and not (i + 1 < len(args) and _PORT.fullmatch(args[i + 1])):
            out.append(ANY_PORT)
    return out


class LiveCommand(TyperCommand):
    """A command whose `--live` and `--vnc` may be given with or without a port."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_live(list(args)))


def live_option(what: str = "the sandbox", note: str = "") -> Any:
    return typer.Option(None, "--live", metavar="[PORT]", min=0, max=65535,
                        help=f"Watch {what} in a browser: a 127.0.0.1 page at a secret URL, on PORT "
                             f"(alone: any free port){note} \\[default: off]")


def vnc_option(what: str = "the sandbox") -> Any:
    return typer.Option(None, "--vnc", metavar="[PORT]", min=0, max=65535,
                        help=f"A VNC server on {what} for a person to watch or take over: 127.0.0.1 only, "
                             "random one-time password, one line vnc://:PASSWORD@127.0.0.1:PORT on stderr; "
                             "on PORT (alone: the first free port from 5900) \\[default: off]")


def view_only_option() -> Any:
    return typer.Option(False, "--view-only", help="With --vnc: watching only, the server refuses keyboard and mouse")


def vnc_settings(vnc: Optional[int], view_only: bool) -> dict[str, Any]:
    """The flat config names for --vnc / --view-only (only what was given)."""
    if view_only and vnc is None:
        raise typer.BadParameter("--view-only goes with --vnc", param_hint="--view-only")
    return {"vnc": vnc, "vnc_view_only": view_only or None}


def live_port_option() -> Any:
    return typer.Option(0, "--live-port", min=0, max=65535, hidden=True,
                        help="Old spelling: the port of --live (0: any free port)")


@overload
def live_port(live: int, old_port: int = 0) -> int: ...
@overload
def live_port(live: None, old_port: int = 0) -> None: ...
@overload
def live_port(live: Optional[int], old_port: int = 0) -> Optional[int]: ...
def live_port(live: Optional[int], old_port: int = 0) -> Optional[int]:
    """The port to serve on (0: any free one), or None without --live."""
    if live is None:
        return None
    return live or old_port
