"""The one exception type the sandbox raises for problems a user can fix (see deskpilot.errors)."""

from deskpilot.errors import DeskStartError, SandboxError, WindowNotFound

__all__ = ["DeskStartError", "SandboxError", "WindowNotFound"]
