"""Sandboxed virtual desktops: Xvfb + openbox, apps under bubblewrap, clean teardown."""

from deskpilot.sandbox.app import App
from deskpilot.sandbox.binds import Bind
from deskpilot.sandbox.core import Sandbox
from deskpilot.sandbox.errors import SandboxError
from deskpilot.sandbox.vnc import VncAccess, VncServer

__all__ = ["App", "Bind", "Sandbox", "SandboxError", "VncAccess", "VncServer"]
