"""Errors the executor raises: a bad action vs. a broken worker."""

from __future__ import annotations


class ActionError(ValueError):
    """The action cannot be performed as given; raised before anything is sent."""


class ExecutorError(RuntimeError):
    """The worker that performs actions failed to start, died or timed out."""
