"""Cached runs: do what worked last time without the model, while the screen still agrees.

The first successful run writes its steps to a JSON file: each step's reply
(so the same parser turns it into the same action) and a fingerprint of the
screen it was decided on (a PNG, compared with the screenshot check's diff).
A later run, before each step, compares the live screen with that step's
fingerprint. While they match, the cached reply is used and the model is not
called; from the first step that does not match, the model decides again for
the rest of the run, and a successful run rewrites the file. Verifying every
cached step against the screen is what keeps a stale cache from clicking blind.

Secrets are kept out of the file: replies are stored redacted (``***NAME***``)
with the names they need, and put back from the run's own secrets when used;
a run without one of them asks the model from that step on.

A cache file is plain JSON anyone can edit, so nothing in it is trusted: a
cached screen that is not base64, not an image, or bigger than ``MAX_PIXELS``
(checked from its header, before decoding), or a cached reply that no longer
parses, is a cache miss from that step on, with a warning; the model decides.
A path that is a folder (or a FIFO) is refused when the cache is opened,
before the run starts.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import stat
import warnings
import re
from pathlib import Path
from typing import Any, Mapping

from PIL import Image
from pydantic import BaseModel, Field, ValidationError

from deskpilot.agent.desk.diff import compare_live
from deskpilot.agent.records.models import HumanAction
from deskpilot.agent.records.secrets import map_strings, redact, restore
from deskpilot.agent.records.userfiles import read_user_file
from deskpilot.errors import ConfigError
from deskpilot.model_backend.types import Reply

VERSION = 1
MAX_PIXELS = 40_000_000  # an 8K screen is 33 Mpx
_log = logging.getLogger(__name__)
_POINT_ACTIONS = {"click", "double_click", "triple_click", "right_click", "middle_click", "hover"}
_FIRST_BOX = re.compile(r"\[\s*\d+(?:\.\d+)?\s*,\s*\d+(?:\.\d+)?(?:\s*,\s*\d+(?:\.\d+)?\s*,\s*\d+(?:\.\d+)?)?\s*\]")
MAX_REGION = 10  # px in one changed region that persists over a caret's whole blink (a blinking caret does not)


class CachedStep(BaseModel):
    step: int
    content: str
    reasoning: str | None = None
    action: dict[str, Any]
    secrets: list[str] = Field(default_factory=list)  # names of the secrets redacted out of this step
    screen_png: str  # base64 PNG of the screen the step was decided on
    element: dict[str, Any] | None = None  # the widget the click hit (role, name, path), when the app has a tree


class CachedHuman(BaseModel):
    """A person's turn (taken over, handed back) as the actions that redo it, and the screen it started from."""

    after_step: int
    actions: list[dict[str, Any]]  # HumanAction dumps: {"action": {...}, "element": {...} | None}
    note: str = ""
    history_line: str = ""
    secrets: list[str] = Field(default_factory=list)
    screen_png: str


class CacheFile(BaseModel):
    version: int = VERSION
    task: str
    task_secrets: list[str] = Field(default_factory=list)  # names of the secrets redacted out of the task
    screen_size: tuple[int, int]
    steps: list[CachedStep] = Field(default_factory=list)
    humans: list[CachedHuman] = Field(default_factory=list)  # a person's turns, done again like cached steps


def _png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _moved_point(content: str, point: tuple[int, int], size: tuple[int, int]) -> str:
    """The reply with its first box or point replaced by ``point`` (pixels), in the model's thousandths."""
    x, y = round(point[0] * 1000 / size[0]), round(point[1] * 1000 / size[1])
    return _FIRST_BOX.sub(f"[{x},{y}]", content, count=1)


def _image(data: str) -> Image.Image:
    """A cached screen, or ValueError saying why it cannot be one (the file may have been edited)."""
    if len(data) > MAX_PIXELS * 4:  # base64 of a PNG of that many RGB pixels, uncompressed: about this
        raise ValueError(f"{len(data)} characters of base64, too big for a screen")
    try:
        raw = base64.b64decode(data, validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ValueError(f"{img.width}x{img.height} pixels, more than a screen")
                return img.convert("RGB")
    except binascii.Error as err:
        raise ValueError(f"not base64 ({err})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"more than {MAX_PIXELS} pixels") from None
    except OSError as err:  # not an image, or a broken one
        raise ValueError(f"not a readable image ({err})") from None


class RunCache:
    """One cache file, used by one run (``Agent(cache=RunCache(path, task))``).

    A file written for another task or screen size is not used (and is
    replaced if this run succeeds).
    """

    def __init__(self, path: Path | str, task: str, *, max_region: int = MAX_REGION):
        self.path = Path(path)
        self.task = task
        self.max_region = max_region
        self.old: CacheFile | None = None
        self.new: list[CachedStep] = []
        self.hits = 0
        self.new_humans: list[CachedHuman] = []
        self.human_hits = 0  # person turns done again from the file
        self.moved: list[int] = []  # steps whose click went to its element's new place
        self.following = True
        self.mismatch: str | None = None  # why the cache stopped being followed
        self.secrets: Mapping[str, str] = {}  # the run's, as last given (the task is stored without them)
        self._refuse_a_bad_path()
        if self.path.is_file():
            try:
                old = CacheFile.model_validate_json(read_user_file(self.path, "cache file"))
            except (ValidationError, ValueError) as err:
                raise ConfigError(f"cache file {self.path} is not a deskpilot cache: {str(err).splitlines()[0]}") from None
            if old.version == VERSION and (old.task == task or old.task_secrets):
                self.old = old  # a task naming secrets is compared at the first lookup, which has them
            else:
                self.mismatch = "the cache was recorded for another task"
        if self.old is None:
            self.following = False
            self.mismatch = self.mismatch or "no cache yet"

    def _refuse_a_bad_path(self) -> None:
        """A folder, FIFO or device as the cache, or a file as its folder: one line now, not after the run."""
        try:
            mode = self.path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            parent = next((p for p in self.path.parents if p.exists()), None)
            if parent is not None and not parent.is_dir():
                raise ConfigError(f"cache file {self.path} cannot be created: {parent} is not a folder") from None
            return
        except OSError as err:
            raise ConfigError(f"cache file {self.path} cannot be read: {err.strerror}") from None
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ConfigError(f"cache file {self.path} is {kind}; name a file (it is created if missing)")

    def miss(self, step: int, why: str) -> None:
        """Stop following the cache at this step because its entry is unusable; the model decides from here."""
        self.following = False
        self.mismatch = f"step {step}: {why}; the model decides from here"
        _log.warning("cache %s, %s", self.path, self.mismatch)

    def reject(self, step: int, why: str) -> None:
        """The reply ``lookup`` just gave is not used after all (it does not parse): a miss, not a hit."""
        self.hits -= 1
        self.miss(step, why)

    def lookup(self, step: int, obs, grab=None, secrets: Mapping[str, str] | None = None,
               find_element=None) -> Reply | None:  # fmt: skip
        """The cached reply for this step if its screen still matches, else None (and stop following).

        With ``grab``, a difference must persist over a caret's whole blink (compare_live).
        ``secrets`` (name -> value) go back into a reply stored without them. ``find_element``
        (element dict -> pixel point or None) finds a cached click's widget by role and name
        when the screen differs: a moved button is clicked where it is now.
        """
        if not self.following or self.old is None:
            return None
        known = secrets or {}
        if step == 1 and self.old.task != self.task and not self._same_task(known):
            return None
        entry = self.old.steps[step - 1] if step - 1 < len(self.old.steps) else None
        if entry is None or entry.step != step:
            self.following, self.mismatch = False, f"the cache ends before step {step}"
            return None
        try:
            cached_screen = _image(entry.screen_png)
        except ValueError as bad:
            self.miss(step, f"the cached screen is unusable: {bad}")
            return None
        diff, _ = compare_live(cached_screen, obs.image, grab)
        moved_to = None
        if diff.size_mismatch or diff.largest > self.max_region:
            moved_to = self._found_again(entry, find_element) if not diff.size_mismatch else None
            if moved_to is None:
                self.following = False
                self.mismatch = f"step {step}: the screen differs from the cached one ({diff.summary()})"
                return None
        missing = [name for name in entry.secrets if not known.get(name)]
        if missing:
            self.following = False
            self.mismatch = f"step {step}: the cached reply needs secret {', '.join(missing)}, which this run lacks"
            return None
        self.hits += 1
        content = restore(entry.content, entry.secrets, known)
        if moved_to is not None:
            self.moved.append(step)
            content = _moved_point(content, moved_to, obs.image.size)
        return Reply(content=content, reasoning=restore(entry.reasoning, entry.secrets, known))

    def _found_again(self, entry: CachedStep, find_element) -> tuple[int, int] | None:
        """Where the element a cached click hit is now (found by role and name), or None.

        Only a single-point action whose element was recorded qualifies: the
        screen moved but the button is still there, one of its kind, so the
        click goes to its new middle instead of ending the cache.
        """
        if find_element is None or not entry.element or not entry.element.get("name"):
            return None
        if entry.action.get("type") not in _POINT_ACTIONS:
            return None
        try:
            return find_element(entry.element)
        except Exception:  # the tree could not be read: the screen rule decides
            return None

    def has_human(self, after_step: int) -> bool:
        """Whether the file holds a person's turn after ``after_step`` that the run may still reach."""
        return self.following and self.old is not None and any(h.after_step == after_step for h in self.old.humans)

    def human_at(self, after_step: int, obs, grab=None, secrets: Mapping[str, str] | None = None) -> CachedHuman | None:
        """The person's cached turn after ``after_step`` if the screen still matches where it started, else None.

        A mismatch (or a secret the run lacks, or an entry that is not valid)
        ends the cache like a cached step's: the model decides from here.
        """
        if not self.following or self.old is None:
            return None
        known = secrets or {}
        if after_step == 0 and self.old.task != self.task and not self._same_task(known):
            return None
        entry = next((h for h in self.old.humans if h.after_step == after_step), None)
        if entry is None:
            return None
        where = f"the person's turn after step {after_step}"
        missing = [name for name in entry.secrets if not known.get(name)]
        if missing:
            self.following = False
            self.mismatch = f"{where} needs secret {', '.join(missing)}, which this run lacks"
            return None
        try:
            cached_screen = _image(entry.screen_png)
            actions = [HumanAction.model_validate(restore(a, entry.secrets, known)) for a in entry.actions]
        except (ValueError, ValidationError) as bad:
            self.miss(after_step, f"{where} is unusable: {str(bad).splitlines()[0]}")
            return None
        diff, _ = compare_live(cached_screen, obs.image, grab)
        if diff.size_mismatch or diff.largest > self.max_region:
            self.following = False
            self.mismatch = f"{where}: the screen differs from the cached one ({diff.summary()})"
            return None
        self.human_hits += 1
        return entry.model_copy(update={"actions": [a.model_dump(mode="json") for a in actions]})

    def keep_human(self, after_step: int, obs, actions: list[dict[str, Any]], note: str, line: str,
                   secrets: Mapping[str, str] | None = None) -> None:  # fmt: skip
        """Remember a person's turn (written by ``finish`` if the run succeeds), the run's secrets taken out."""
        known = self.secrets = secrets or self.secrets
        text = json.dumps(actions) + note
        names = sorted(n for n, v in known.items() if v and v in text)
        self.new_humans.append(CachedHuman(
            after_step=after_step, actions=[map_strings(a, lambda t: redact(t, known)) for a in actions],
            note=redact(note, known), history_line=redact(line, known), secrets=names, screen_png=_png(obs.image)))

    def note_element(self, step: int, element: dict[str, Any] | None) -> None:
        """Add the element a kept step's click hit (read after ``keep``, before the action)."""
        if element and self.new and self.new[-1].step == step:
            self.new[-1] = self.new[-1].model_copy(update={"element": element})

    def _same_task(self, known: Mapping[str, str]) -> bool:
        assert self.old is not None
        missing = [name for name in self.old.task_secrets if not known.get(name)]
        if missing:
            self.mismatch = f"the cache's task needs secret {', '.join(missing)}, which this run lacks"
        elif restore(self.old.task, self.old.task_secrets, known) != self.task:
            self.mismatch = "the cache was recorded for another task"
        self.following = not missing and self.mismatch is None
        return self.following

    def keep(self, step: int, obs, reply: Reply, action, secrets: Mapping[str, str] | None = None) -> None:
        """Remember what this run did at this step (written by ``finish`` if the run succeeds).

        ``secrets`` (name -> value) are taken out of what is kept, and their names noted.
        """
        known = self.secrets = secrets or {}
        content = redact(reply.content, known)
        reasoning = redact(reply.reasoning, known) if reply.reasoning is not None else None
        names = [n for n, v in known.items() if v and (v in reply.content or v in (reply.reasoning or ""))]
        self.new.append(CachedStep(
            step=step, content=content, reasoning=reasoning, secrets=sorted(names),
            action=map_strings(action.model_dump(mode="json"), lambda text: redact(text, known)),
            screen_png=_png(obs.image)))

    def finish(self, run_dir: Path | None = None, *, saved: bool) -> int:
        """Write the file if the run succeeded and anything changed; returns the model calls saved."""
        changed = self.hits < len(self.new) or self.human_hits < len(self.new_humans)
        if saved and self.new and (self.old is None or changed):
            size = _image(self.new[0].screen_png).size
            task = redact(self.task, self.secrets)
            names = sorted(name for name, value in self.secrets.items() if value and value in self.task)
            data = CacheFile(task=task, task_secrets=names, screen_size=size, steps=self.new,
                             humans=self.new_humans).model_dump_json()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(self.path.suffix + ".tmp")
                tmp.write_text(data, encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError as err:  # the run itself is recorded; only the cache is not
                _log.warning("cache file %s not written: %s", self.path, err.strerror or err)
        if run_dir is not None:
            summary = {"cache": str(self.path), "model_calls_saved": self.hits, "steps": len(self.new),
                       "person_turns_from_cache": self.human_hits, "person_turns": len(self.new_humans),
                       "clicks_found_by_element": self.moved,
                       "followed_until": self.mismatch, "rewritten": saved and changed}
            (Path(run_dir) / "cache.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return self.hits
