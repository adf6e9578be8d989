"""Sandboxed virtual desktops: Xvfb + openbox, apps under bubblewrap, clean teardown."""

from sandbox.app import App
from sandbox.binds import Bind
from sandbox.core import Sandbox
from sandbox.errors import SandboxError

__all__ = ["App", "Bind", "Sandbox", "SandboxError"]
