"""The rest of the GLM-V family, and choosing a dialect by name.

- ``glm-4.1v``: GLM-4.1V-Thinking's desktop layout: screenshots first
  (current, then the recent history ones, oldest first), the action space as
  call lines with a comment each, coordinates in 0-1000, and its
  ``History actions:`` / ``Memory:`` tail.
- ``glm-5v``: the newer GLM-V desktop action space (``hold_keys`` on pointer
  calls, ``left_triple_click``, a drag whose two ends are named,
  ``element_info`` required), ``None`` for an empty history, and a block for
  the user's latest response. Its reference agent samples at temperature 1.
"""

from __future__ import annotations

from typing import Any

from deskpilot.agent.dialects.actionspace import CallSpec, desktop_calls
from deskpilot.agent.dialects.glm45v import GLM45VDialect, GLM45VOptions, Sampling
from deskpilot.errors import ConfigError


class GLM41VDialect(GLM45VDialect):
    name = "glm-4.1v"
    template_name = "glm-4.1v"
    coordinate_max = 1000
    sampling = Sampling(temperature=0.001, max_tokens=8192, thinking=True)


class GLM5VDialect(GLM45VDialect):
    name = "glm-5v"
    template_name = "glm-5v"
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=8192, thinking=True)

    def action_calls(self) -> list[CallSpec]:
        # The reference prompt offers no FAIL (the parser still accepts one).
        return desktop_calls(extended=True, fail=False)


DIALECTS: dict[str, type[GLM45VDialect]] = {
    GLM45VDialect.name: GLM45VDialect,
    GLM41VDialect.name: GLM41VDialect,
    GLM5VDialect.name: GLM5VDialect,
}
DIALECT_NAMES: tuple[str, ...] = tuple(DIALECTS)


def make_dialect(name: str = "glm-4.5v", options: GLM45VOptions | None = None, **kwargs: Any) -> GLM45VDialect:
    """The dialect called ``name`` (case-insensitive), or a ConfigError listing the choices."""
    cls = DIALECTS.get(name.strip().lower())
    if cls is None:
        raise ConfigError(f"unknown dialect {name!r}: choose one of {', '.join(DIALECT_NAMES)}")
    return cls(options, **kwargs)
