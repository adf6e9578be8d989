"""The one error the parser raises: short enough to show the model in a retry (see deskpilot.errors)."""

from deskpilot.errors import ParseError

__all__ = ["ParseError"]
