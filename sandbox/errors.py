"""The one exception type the sandbox raises for problems a user can fix."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """A one-line, user-facing message, e.g. ``Xvfb not found: apt-get install xvfb``."""
