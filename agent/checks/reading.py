"""Reading the files checks look at, safely (see files.py): no links followed below the anchor, no FIFOs, a size cap."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from deskpilot.agent.checks.base import resolve

MAX_BYTES = 64 * 1024 * 1024


class Unreadable(Exception):
    """The file a check names cannot be read safely; the message says why."""


def link_refused(path: Path) -> str:
    return f"{path} is a symbolic link: checks do not follow links (an app may have made it)"


def links_below(anchor: Path, path: Path) -> Path | None:
    """The first symbolic link among the folders from ``anchor`` down to ``path`` (exclusive), if any."""
    try:
        parts = path.relative_to(anchor).parts[:-1]
    except ValueError:
        return None
    here = anchor
    for part in parts:
        here = here / part
        if here.is_symlink():
            return here
    return None


def read_file(path: Path, anchor: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file, read as described above; ``Unreadable`` says why not."""
    link = links_below(anchor, path)
    if link is not None:
        raise Unreadable(link_refused(link))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Unreadable(f"{path} does not exist") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Unreadable(link_refused(path)) from None
        raise Unreadable(f"{path} cannot be read: {err.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{path} is not a file")
        limit = MAX_BYTES if limit is None else limit
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"{path} is larger than the {limit:,} bytes a check reads")
    return data


def locate(named: str, base: Path) -> tuple[Path, Path]:
    """(path, anchor) of a file a check names: links below the anchor are not followed.

    The anchor is ``base`` for a relative name (the part an app may control
    starts there), the file's own folder for an absolute one, and the common
    folder when a relative name climbs out of ``base`` ("../x").
    """
    path = Path(os.path.normpath(resolve(named, base)))
    anchor = Path(os.path.normpath(base)) if not Path(named).expanduser().is_absolute() else path.parent
    if anchor not in path.parents:
        anchor = Path(os.path.commonpath([anchor, path]))
    return path, anchor
