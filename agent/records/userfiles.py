"""The one reader of files a user names (config, suite, workflow, prompt template, output schema).

It lives in the records room, the lowest room that reads files, so every room
above (dialects for templates, loop for answer schemas, config for the rest)
reads user files the same way.
"""

from __future__ import annotations

import stat
from pathlib import Path

from deskpilot.errors import ConfigError


def read_user_file(path: Path, what: str, error: type[ConfigError] = ConfigError) -> str:
    """The text of a file the user named (``what``: "suite file"), or one line saying why not.

    Only regular files are read: a folder fails at once, and a FIFO or a
    device (``/dev/stdin``) would block or never end.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as err:
        raise error(f"{what} {path} cannot be read: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        raise error(f"{what} {path} is not a regular file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None
    except OSError as err:
        raise error(f"{what} {path} cannot be read: {err.strerror}") from None
