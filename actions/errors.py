"""Errors the executor raises: a bad action vs. a broken worker (defined in deskpilot.errors)."""

from deskpilot.errors import ActionError, ExecutorError

__all__ = ["ActionError", "ExecutorError"]
