"""Reading the files checks look at, safely: the walk from an anchor never follows a link, no FIFOs, a size cap.

Apart from files.py so that the comparison families (tables, documents) can read files without importing
the check syntax. The anchor (`locate`) is the highest of: the folder a relative path starts from, the
shared folder the path lies in (apps can plant links anywhere in a share), the file's own folder.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterable

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


_WALK = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_folder(path: Path, anchor: Path, *, create: bool = False) -> int:
    """An ``O_PATH`` fd on the folder holding ``path``, reached from ``anchor`` one folder at a time.

    No link below ``anchor`` is followed (``Unreadable`` names it); with
    ``create``, missing folders are made on the way (baseline writes).
    """
    try:
        parts = path.parent.relative_to(anchor).parts
    except ValueError:
        raise Unreadable(f"{path} is not below {anchor}") from None
    try:
        fd = os.open(anchor, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the anchor is the user's: followed
    except FileNotFoundError:
        raise Unreadable(f"{path} does not exist") from None
    except OSError as err:
        raise Unreadable(f"{path} cannot be read: {err.strerror}") from None
    here = anchor
    try:
        for part in parts:
            here = here / part
            try:
                if create and not os.path.lexists(here):
                    os.mkdir(part, 0o755, dir_fd=fd)
                step = os.open(part, _WALK, dir_fd=fd)
            except FileNotFoundError:
                raise Unreadable(f"{path} does not exist") from None
            except OSError as err:
                if here.is_symlink():
                    raise Unreadable(link_refused(here)) from None
                raise Unreadable(f"{path} cannot be read: {err.strerror}") from None
            os.close(fd)
            fd = step
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: Path, anchor: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file, read as described above; ``Unreadable`` says why not."""
    limit = MAX_BYTES if limit is None else limit
    folder = open_folder(path, anchor)
    try:
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    except FileNotFoundError:
        raise Unreadable(f"{path} does not exist") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Unreadable(link_refused(path)) from None
        raise Unreadable(f"{path} cannot be read: {err.strerror}") from None
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"{path} is not a file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"{path} is larger than the {limit:,} bytes a check reads")
    return data


def _share_above(path: Path, shares: Iterable[str | os.PathLike[str]]) -> Path | None:
    """The highest folder above ``path`` that is a share (as named, or resolved: a link to it counts)."""
    reals = {os.path.realpath(s) for s in shares}
    if not reals:
        return None
    for folder in reversed(path.parents):  # top down: the share is met before anything planted in it
        if str(folder) in reals or os.path.realpath(folder) in reals:
            return folder
    return None


def locate(named: str, base: Path, shares: Iterable[str | os.PathLike[str]] = ()) -> tuple[Path, Path]:
    """(path, anchor) of a file a check names: links below the anchor are not followed.

    The anchor is ``base`` for a relative name (the part an app may control
    starts there), the file's own folder for an absolute one, and the common
    folder when a relative name climbs out of ``base`` ("../x"); but never
    below the shared folder the path lies in (``shares``: the host folders
    the apps can write), since an app can plant a link anywhere in it.
    """
    path = Path(os.path.normpath(resolve(named, base)))
    anchor = Path(os.path.normpath(base)) if not Path(named).expanduser().is_absolute() else path.parent
    if anchor not in path.parents:
        anchor = Path(os.path.commonpath([anchor, path]))
    share = _share_above(path, shares)
    if share is not None and len(share.parts) < len(anchor.parts):
        anchor = share
    return path, anchor
