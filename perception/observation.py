"""What one look at the screen produced."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass(frozen=True)
class Observation:
    """An RGB frame of a sandbox's display and when it was taken.

    ``timestamp`` is ``time.monotonic()``; ``width``/``height`` are the
    ORIGINAL screen size that model coordinates are relative to.
    """

    image: Image.Image
    timestamp: float
    display: str = ""
    grab_ms: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size
