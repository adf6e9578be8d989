"""The one error the parser raises: short enough to show the model in a retry."""

from __future__ import annotations


class ParseError(ValueError):
    """A reply the parser cannot turn into an action.

    ``message`` is one short sentence written for the model, e.g. "the
    start_box must be [x,y] with numbers from 0 to 999".
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
