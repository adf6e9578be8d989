"""Model dialects: how a model is prompted and how its replies are read."""

from deskpilot.agent.dialects.base import Dialect, HistoryEntry, ParsedStep
from deskpilot.agent.dialects.family import DIALECT_NAMES, DIALECTS, GLM41VDialect, GLM5VDialect, make_dialect
from deskpilot.agent.dialects.glm45v import GLM45VDialect, GLM45VOptions, Sampling

__all__ = ["DIALECTS", "DIALECT_NAMES", "Dialect", "GLM41VDialect", "GLM45VDialect", "GLM45VOptions", "GLM5VDialect",
           "HistoryEntry", "ParsedStep", "Sampling", "make_dialect"]
