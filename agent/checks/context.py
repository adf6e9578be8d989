"""What checks may look at: files, the settled screen, the windows, OCR and the model."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from deskpilot.errors import UsageError


UPDATE_ENV = "DESKPILOT_UPDATE_BASELINES"


def updating_baselines() -> bool:
    """True when the user asked for baselines to be (re)written from the screen."""
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class CheckContext:
    """Everything a check may need; all optional, so file checks work with none of it.

    - ``base_dir``: relative file and baseline paths are resolved against it.
    - ``screen``: the settled screenshot, or a callable that takes one (called
      once; every screen check then sees the same frame).
    - ``sandbox``: anything with ``display`` and ``xauthority`` (window titles).
    - ``ask``: ``question -> answer`` from a model (``expect`` checks); ``Agent.ask``
      fits and records the exchange in the run's trajectory.
    - ``out_dir``: where diff images are written (the run folder); ``prefix``
      names them (``check_03_diff.png``).
    - ``record``: called with every CheckResult as it is made (the trajectory).
    - ``shares``: host folders the apps can write (links in them are never
      followed); the sandbox's own shares are added (`share_roots`).
    - ``run_started_ns``: when the run started, on the file system's clock
      (``files.file_clock``); ``existed``: the checked files that existed then.
      File checks use them for ``modified_during_run``. ``file_wait_s``: a
      failing file check is read again until it holds, up to this long (apps
      write files after their screen has settled).
    - ``update_baselines``: a screenshot check whose baseline is missing or
      differs writes the current screen as the new baseline and passes
      (default: ``$DESKPILOT_UPDATE_BASELINES``, set by ``--update-baselines``).
    """

    base_dir: Path = field(default_factory=Path.cwd)
    screen: Image.Image | Callable[[], Any] | None = None
    sandbox: Any = None
    ask: Callable[[str], str] | None = None
    out_dir: Path | None = None
    prefix: str = "check"
    record: Callable[[Any], None] | None = None
    index: int = 0  # number of the check being run (set by run_checks)
    run_started_ns: int | None = None
    existed: set[str] | None = None
    file_wait_s: float = 0.0  # a failing file check is read again until it holds, for up to this long
    update_baselines: bool = field(default_factory=updating_baselines)
    shares: "list[str | os.PathLike[str]]" = field(default_factory=list)
    ocr_ms: float = 0.0
    _frame: Image.Image | None = None
    _lines: dict | None = None
    _tree: Any = None
    _bare: Any = None

    def share_roots(self) -> list[str | os.PathLike[str]]:
        """Every folder an app may have written: ``shares`` and those of ``sandbox`` (a desk or a Sandbox)."""
        roots = list(self.shares)
        desk_shares = getattr(self.sandbox, "shares", None)
        if isinstance(desk_shares, dict):  # a desk: as the apps see them -> the host folders behind them
            roots += [*desk_shares, *desk_shares.values()]
        layout = getattr(self.sandbox, "_layout", None)
        roots += [b.host for b in getattr(layout, "binds", ()) if b.writable]
        return roots

    def screenshot(self) -> Image.Image:
        if self._frame is None:
            if self.screen is None:
                raise UsageError("this check needs a screen: run it with a desktop")
            from deskpilot.perception.ocr import frame_of

            self._frame = frame_of(self.screen() if callable(self.screen) else self.screen).convert("RGB")
        return self._frame

    def ocr_lines(self, region=None) -> list:
        """OCR of the settled screen, read once and shared by every text check.

        A check with a region gets the lines in it (perception.ocr reads whole frames, incrementally:
        a crop read alone misreads).
        """
        from deskpilot.perception.ocr import read_text

        if self._lines is None:
            self._lines = {}
        key = None if None in self._lines else region
        if key not in self._lines:
            started = time.perf_counter()
            self._lines[key] = read_text(self.screenshot(), _padded(key, self.screenshot().size))
            self.ocr_ms = (time.perf_counter() - started) * 1000
        return self._lines[key]

    def desk(self) -> Any:
        """What answers about the accessibility tree: a desk (Session), or a reader for a bare Sandbox."""
        if self.sandbox is None:
            raise UsageError("an element check needs a desktop")
        if callable(getattr(self.sandbox, "a11y_snapshot", None)):
            return self.sandbox
        if getattr(self.sandbox, "a11y_address", None) is None:
            raise UsageError("an element check needs a desktop with its accessibility bus on")
        if self._bare is None:
            self._bare = _BareDesk(self.sandbox)
        return self._bare

    def tree(self) -> Any:
        """A bounded snapshot of the accessibility tree, read once and shared by every element check."""
        if self._tree is None:
            self._tree = self.desk().a11y_snapshot(time_limit=2.0)
        return self._tree

    def window_titles(self) -> tuple[list[str], str | None]:
        """Titles of the managed top-level windows, and the focused one's (EWMH)."""
        if self.sandbox is None:
            raise UsageError("a window_title check needs a desktop")
        from Xlib import Xatom

        from deskpilot.sandbox import x11

        sb = getattr(self.sandbox, "sandbox", None) or self.sandbox  # a Session wraps the low-level Sandbox
        if not hasattr(sb, "display"):
            raise UsageError("a window_title check needs a desktop with an X display")
        conn = x11.connect(sb.display, getattr(sb, "xauthority", None))
        try:
            titles = x11.window_titles(conn)
            prop = conn.screen().root.get_full_property(conn.intern_atom("_NET_ACTIVE_WINDOW"), Xatom.WINDOW)
            active = x11.window_title(conn, prop.value[0]) if prop and prop.value[0] else None
        finally:
            conn.close()
        return titles, active

    def save_image(self, image: Image.Image, what: str) -> str | None:
        """Write an evidence image into out_dir; its path (None without an out_dir)."""
        if self.out_dir is None:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.prefix}_{self.index:02d}_{what}.png")
        path = self.out_dir / name
        image.save(path)
        return str(path)

    def fresh(self) -> None:
        """Forget the frame, its OCR and the tree (after the screen changed)."""
        self._frame, self._lines, self._tree = None, None, None


OCR_MARGIN = 32  # pixels of context around a region's crop


def _padded(region: Any, size: tuple[int, int]) -> Any:
    if region is None:
        return None
    x1, y1, x2, y2 = region
    m = OCR_MARGIN
    return max(0, x1 - m), max(0, y1 - m), min(size[0], x2 + m), min(size[1], y2 + m)


class _BareDesk:
    """The tree-reading part of a desk, for a low-level Sandbox (checks run on either)."""

    def __init__(self, sandbox: Any) -> None:
        from deskpilot.perception.a11y import A11yReader

        self.sandbox = sandbox
        self.reader = A11yReader(sandbox.a11y_address)

    def a11y_snapshot(self, **bounds: Any) -> Any:
        return self.reader.snapshot(**bounds)

    def app_names(self) -> list[str]:
        return [Path(app.argv[0]).name for app in self.sandbox.apps]
