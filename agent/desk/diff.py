"""Comparing two screenshots the way a person would notice a change.

A pixelmatch-style per-pixel test (the YIQ colour distance, so antialiasing
noise below ``threshold`` is ignored), then changed pixels grouped into
regions on an 8-pixel grid. Judging by the largest region, not by a global
agreement score, is what makes a changed word fail on a 1920x1080 screen,
where it touches only 0.01 % of the pixels. The screenshot check and replay's
divergence test both use this.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw
from pydantic import BaseModel

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, x2/y2 exclusive

_MAX_YIQ_DELTA = 35215.0  # the largest possible YIQ distance (black vs white)
_CELL = 8  # changed pixels within one grid cell of each other form one region


class Region(BaseModel):
    box: Box
    pixels: int


class ImageDiff(BaseModel):
    """What differs between a baseline and a live frame."""

    changed: int  # pixels over the colour threshold (outside the masks)
    compared: int  # pixels compared (outside the masks)
    regions: list[Region]  # largest first
    size_mismatch: bool = False

    @property
    def share(self) -> float:
        return self.changed / self.compared if self.compared else 0.0

    @property
    def largest(self) -> int:
        """Changed pixels in the largest connected region (0 when nothing changed)."""
        return self.regions[0].pixels if self.regions else 0

    def summary(self) -> str:
        if self.size_mismatch:
            return "the images differ in size"
        if not self.changed:
            return "no pixel changed"
        top = self.regions[0]
        return (f"{self.changed} px changed ({self.share:.3%}) in {len(self.regions)} region(s); "
                f"largest {top.pixels} px at {list(top.box)}")


def _yiq(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.29889531 * r + 0.58662247 * g + 0.11448223 * b
    i = 0.59597799 * r - 0.27417610 * g - 0.32180189 * b
    q = 0.21147017 * r - 0.52261711 * g + 0.31114694 * b
    return y, i, q


def changed_mask(a: Image.Image, b: Image.Image, threshold: float = 0.1) -> np.ndarray:
    """Boolean HxW array: where the two same-sized images visibly differ."""
    pa = np.asarray(a.convert("RGB"), dtype=np.float32)
    pb = np.asarray(b.convert("RGB"), dtype=np.float32)
    ya, ia, qa = _yiq(pa)
    yb, ib, qb = _yiq(pb)
    delta = 0.5053 * (ya - yb) ** 2 + 0.299 * (ia - ib) ** 2 + 0.1957 * (qa - qb) ** 2
    return delta > _MAX_YIQ_DELTA * threshold * threshold


def _regions(mask: np.ndarray, box: Box | None = None) -> list[Region]:
    """Connected groups of changed grid cells (8-neighbourhood).

    ``box``: no pixel outside it is set, so only the grid cells it touches
    are counted (the same regions, without summing a whole screen of cells).
    """
    h, w = mask.shape
    if box is None:
        box = (0, 0, w, h)
    ox, oy = box[0] // _CELL, box[1] // _CELL  # the box widened to whole grid cells
    sub = mask[oy * _CELL:box[3], ox * _CELL:box[2]]
    sh, sw = sub.shape
    gh, gw = -(-sh // _CELL), -(-sw // _CELL)
    padded = np.zeros((gh * _CELL, gw * _CELL), dtype=np.int32)
    padded[:sh, :sw] = sub
    counts = padded.reshape(gh, _CELL, gw, _CELL).sum(axis=(1, 3))
    seen = np.zeros_like(counts, dtype=bool)
    out: list[Region] = []
    for cy, cx in zip(*np.nonzero(counts)):
        if seen[cy, cx]:
            continue
        seen[cy, cx] = True
        queue, pixels = deque([(cy, cx)]), 0
        y1, x1, y2, x2 = cy, cx, cy, cx
        while queue:
            y, x = queue.popleft()
            pixels += int(counts[y, x])
            y1, x1, y2, x2 = min(y1, y), min(x1, x), max(y2, y), max(x2, x)
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    if 0 <= ny < gh and 0 <= nx < gw and not seen[ny, nx] and counts[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        x1, y1, x2, y2 = x1 + ox, y1 + oy, x2 + ox, y2 + oy
        region = (int(x1 * _CELL), int(y1 * _CELL), int(min(w, (x2 + 1) * _CELL)), int(min(h, (y2 + 1) * _CELL)))
        out.append(Region(box=region, pixels=pixels))
    out.sort(key=lambda r: -r.pixels)
    return out


def _mask_array(size: tuple[int, int], masks: Sequence[Box]) -> np.ndarray:
    keep = np.ones((size[1], size[0]), dtype=bool)
    for x1, y1, x2, y2 in masks:
        keep[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = False
    return keep


def compare(baseline: Image.Image, live: Image.Image, *, threshold: float = 0.1,
            masks: Sequence[Box] = ()) -> tuple[ImageDiff, np.ndarray | None]:
    """Diff two frames -> (summary, changed-pixel mask or None if the sizes differ)."""
    if baseline.size != live.size:
        total = live.width * live.height
        return ImageDiff(changed=total, compared=total, regions=[Region(box=(0, 0, live.width, live.height),
                                                                        pixels=total)], size_mismatch=True), None
    keep = _mask_array(live.size, masks)
    mask = np.zeros((live.height, live.width), dtype=bool)
    a, b = (x if x.mode == "RGB" else x.convert("RGB") for x in (baseline, live))  # convert() would copy RGB too
    box = ImageChops.difference(a, b).getbbox()  # outside it every pixel is equal: distance 0
    if box is not None:
        x1, y1, x2, y2 = box
        mask[y1:y2, x1:x2] = changed_mask(a.crop(box), b.crop(box), threshold) & keep[y1:y2, x1:x2]
    return ImageDiff(changed=int(mask.sum()), compared=int(keep.sum()), regions=_regions(mask, box) if box else []), mask


def diff_image(live: Image.Image, mask: np.ndarray | None, diff: ImageDiff, masks: Sequence[Box] = ()) -> Image.Image:
    """The live frame faded to grey, changed pixels red, regions outlined, masks shaded blue."""
    grey = np.asarray(live.convert("L"), dtype=np.float32)
    faded = (255 - (255 - grey) * 0.15).astype(np.uint8)
    out = np.stack([faded] * 3, axis=-1)
    if mask is not None:
        out[mask] = (255, 0, 0)
    image = Image.fromarray(out, "RGB")
    draw = ImageDraw.Draw(image, "RGBA")
    for x1, y1, x2, y2 in masks:
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=(30, 100, 220, 60))
    for region in diff.regions[:20]:
        x1, y1, x2, y2 = region.box
        draw.rectangle((x1 - 2, y1 - 2, x2 + 1, y2 + 1), outline=(220, 0, 160, 255), width=2)
    return image


def compare_live(baseline: Image.Image, live: Image.Image, grab=None, *, threshold: float = 0.1,
                 masks: Sequence[Box] = (), gap: float = 0.15, window: float = 1.3,
                 small: int = 0) -> tuple[ImageDiff, np.ndarray | None]:
    """``compare`` against a live screen, counting only changes that persist.

    If anything differs and ``grab`` can take more frames, frames are taken
    ``gap`` seconds apart for ``window`` seconds (fewer once nothing differs
    any more), and a pixel counts as changed only if it differs in every one.
    The window spans a whole blink of a caret (Tk: 600 ms on, 300 off; GTK3,
    measured on mousepad: 800 on, 400 off), and each phase is longer than the
    gap, so some frame agrees with the baseline about the caret, while a
    changed word differs in all of them. (Three frames 0.35 s apart could all
    fall in one GTK3 "on": a cached step missed on mousepad's caret.)

    ``small``: a caller that treats a largest region of at most this many
    pixels as "no change" gets the first comparison at once when it is that
    small: more frames only ever clear pixels, so they could not make it larger
    (no grabs, no wait).
    """
    import time

    from deskpilot.perception.ocr import frame_of

    diff, mask = compare(baseline, live, threshold=threshold, masks=masks)
    if grab is None or mask is None or not diff.changed or diff.largest <= small:
        return diff, mask
    until = time.monotonic() + window
    while time.monotonic() < until:
        time.sleep(gap)
        more, more_mask = compare(baseline, frame_of(grab()), threshold=threshold, masks=masks)
        if more_mask is None:
            return more, None
        mask &= more_mask
        if not mask.any() or (small and _largest(mask) <= small):  # cleared pixels never come back
            break
    return ImageDiff(changed=int(mask.sum()), compared=diff.compared, regions=_regions(mask, b) if (b := _box_of(mask)) else []), mask


def _largest(mask: np.ndarray) -> int:
    """Pixels in the largest connected changed region of ``mask``."""
    box = _box_of(mask)
    return max((r.pixels for r in _regions(mask, box)), default=0) if box else 0


def _box_of(mask: np.ndarray) -> Box | None:
    """The bounding box of the set pixels (None when there are none)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
