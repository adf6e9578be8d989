"""Model dialects: how a model is prompted and how its replies are read."""

from deskpilot.agent.dialects.base import Dialect, HistoryEntry, ParsedStep
from deskpilot.agent.dialects.glm45v import GLM45VDialect, GLM45VOptions

__all__ = ["Dialect", "GLM45VDialect", "GLM45VOptions", "HistoryEntry", "ParsedStep"]
