"""Find the system programs the sandbox needs, or say which package to install."""

from __future__ import annotations

import shutil

from deskpilot.sandbox.errors import SandboxError

# program -> Debian package that ships it
PACKAGES = {
    "Xvfb": "xvfb",
    "openbox": "openbox",
    "bwrap": "bubblewrap",
    "xauth": "xauth",
    "unshare": "util-linux",
    "setpriv": "util-linux",
    "nsenter": "util-linux",
}


def require(program: str) -> str:
    """Absolute path of ``program`` on PATH, or a SandboxError naming its package."""
    path = shutil.which(program)
    if path is None:
        package = PACKAGES.get(program, program)
        raise SandboxError(f"{program} not found: apt-get install {package}")
    return path
