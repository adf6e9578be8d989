"""Screen checks: OCR text, window titles (EWMH), baseline screenshots, and the model's judgement."""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from deskpilot.agent.checks import models as m
from deskpilot.agent.checks.context import CheckContext
from deskpilot.agent.desk.diff import compare_live, diff_image
from deskpilot.agent.checks.files import Unreadable, link_refused, links_below, locate, open_folder, read_file
from deskpilot.errors import UsageError

Outcome = tuple[bool, str, dict[str, Any]]


def _inside(box, region) -> bool:
    x, y = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    return region is None or (region[0] <= x < region[2] and region[1] <= y < region[3])


def _seen(lines, region) -> list[str]:
    return [t.text for t in lines if _inside(t.box, region)]


def _tree_text(check: m.TextVisible | m.TextAbsent, wanted: str, ctx: CheckContext) -> Outcome | None:
    """The text check answered from the accessibility tree, or None when OCR must answer.

    Found in the tree: settled. Not found: settled only when every app of
    the desk publishes a tree (else it may be drawn by one that does not)
    and no widget shows a document (whose visible part the tree does not say).
    """
    from deskpilot.perception.ocr import _tree_match, long_text, tree_covers, tree_lines

    if ctx.sandbox is None:
        return None
    try:
        desk = ctx.desk()
    except UsageError:
        return None
    started = time.perf_counter()
    lines = tree_lines(desk, check.region)
    if lines is None:
        return None
    found = _tree_match(lines, wanted)
    documents = any(long_text(line, wanted) for line in lines)
    if not found and (check.region is not None or documents or not tree_covers(desk)):
        return None  # absent from the tree proves nothing in a region, beside a document, or with tree-less apps
    where = f" in {list(check.region)}" if check.region else ""
    evidence = {"via": "a11y", "found": [t.model_dump() for t in found[:10]],
                "seen": [t.text[:80] for t in lines[:40]], "a11y_ms": round((time.perf_counter() - started) * 1000, 1)}
    if isinstance(check, m.TextVisible):
        if found:
            return True, f"{wanted!r} is at {list(found[0].box)} (via a11y)", evidence
        shown = "; ".join(t.text[:40] for t in lines[:10]) or "no text"
        return False, f"{wanted!r} is not on screen{where} (via a11y; the apps show: {shown})", evidence
    if found:
        return False, f"{wanted!r} is on screen at {list(found[0].box)} (via a11y)", evidence
    return True, f"{wanted!r} is not on screen{where} (via a11y)", evidence


def text(check: m.TextVisible | m.TextAbsent, ctx: CheckContext) -> Outcome:
    from deskpilot.perception.ocr import match

    wanted = check.text_visible if isinstance(check, m.TextVisible) else check.text_absent
    answered = _tree_text(check, wanted, ctx)
    if answered is not None:
        return answered
    lines = ctx.ocr_lines(check.region)
    found = [t for t in match(lines, wanted) if _inside(t.box, check.region)]
    seen = _seen(lines, check.region)
    evidence = {"via": "ocr", "found": [t.model_dump() for t in found], "seen": seen[:40],
                "ocr_ms": round(ctx.ocr_ms, 1)}
    where = f" in {list(check.region)}" if check.region else ""
    shown = "; ".join(seen[:10]) or "no text"
    if isinstance(check, m.TextVisible):
        if found:
            return True, f"{wanted!r} is at {list(found[0].box)} (via ocr)", evidence
        return False, f"{wanted!r} is not on screen{where} (OCR read: {shown})", evidence
    if found:
        return False, f"{wanted!r} is on screen at {list(found[0].box)} (via ocr)", evidence
    return True, f"{wanted!r} is not on screen{where} (via ocr)", evidence


def _fold(value: Any) -> str:
    return " ".join(str(value).split())


def _same_value(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or wanted is None:
        return _fold(actual).lower() == _fold(wanted).lower()
    if isinstance(wanted, (int, float)):
        try:
            return float(str(actual).strip()) == float(wanted)
        except ValueError:
            return False
    return _fold(actual) == _fold(wanted)


def element(check: m.ElementCheck, ctx: CheckContext) -> Outcome:
    """An element check, on one bounded snapshot of the tree shared by every element check of the run."""
    from deskpilot.agent.desk.locator import NO_TREE
    from deskpilot.perception.a11y import Query, closest_names, find, in_view

    q = check.element
    snap = ctx.tree()
    query = Query(role=q.role, name=q.name, text=q.text, label=q.label, exact=q.exact)
    found = find(snap, query)
    if q.nth is not None:
        found = found[q.nth : q.nth + 1] if q.nth >= 0 else found[q.nth :][:1]
    evidence: dict[str, Any] = {"via": "a11y", "matches": [n.summary() for n in found[:10]],
                                "tree_ms": round(snap.elapsed * 1000, 1), "truncated": snap.truncated}
    if not snap.apps:
        return False, NO_TREE.format(apps=", ".join(ctx.desk().app_names()) or "no apps"), evidence
    what = q.describe()
    if check.count is not None:
        ok = len(found) == check.count
        return ok, f"{len(found)} x {what}" + ("" if ok else f", wanted {check.count}"), evidence
    if not found:
        if check.state == "hidden":
            return True, f"no {what} on screen", evidence
        seen = "; ".join(closest_names(snap, query)) or "no named elements"
        return False, f"no {what} (closest seen: {seen})", evidence
    found = in_view(snap, found)  # copies of one widget in two views (LibreOffice): the one in front, as locators
    if len(found) > 1:
        listed = "; ".join(f"{n.describe()} at {n.path}" for n in found[:5])
        return False, f"{len(found)} elements match {what} ({listed}): add nth or a narrower name", evidence
    node = found[0]
    problems = []
    if check.state is not None and not _state_holds(node, check.state):
        problems.append(f"is not {check.state} (states: {', '.join(sorted(node.states)) or 'none'})")
    text_now = node.text if node.text is not None else node.name
    if check.text is not None and _fold(text_now) != _fold(check.text):
        problems.append(f"has text {text_now[:80]!r}, not {check.text!r}")
    value_now: Any = node.value if node.value is not None and node.text in (None, "") else text_now
    if check.value is not None and not _same_value(value_now, check.value):
        problems.append(f"has value {str(value_now)[:80]!r}, not {check.value!r}")
    if problems:
        return False, f"{node.describe()} " + "; ".join(problems), evidence
    return True, f"{node.describe()} at {node.path}", evidence


def _state_holds(node: Any, state: str) -> bool:
    from deskpilot.perception.a11y import Query

    return Query(states=(state,)).matches(node)


def window(check: m.WindowTitle, ctx: CheckContext) -> Outcome:
    titles, active = ctx.window_titles()
    evidence = {"windows": titles, "focused": active}
    if check.focused:
        if active is not None and check.window_title in active:
            return True, f"focused window {active!r}", evidence
        return False, f"the focused window is {active!r}, not one titled {check.window_title!r}", evidence
    hits = [t for t in titles if check.window_title in t]
    if hits:
        return True, f"window {hits[0]!r}", evidence
    return False, f"no window titled {check.window_title!r} (windows: {titles})", evidence


def screenshot(check: m.ScreenshotMatches, ctx: CheckContext) -> Outcome:
    path, anchor = locate(check.screenshot_matches, ctx.base_dir, ctx.share_roots())
    live = ctx.screenshot()
    evidence: dict[str, Any] = {"baseline": str(path)}
    link = links_below(anchor, path)
    if link is not None:  # neither read nor written through a folder link an app may have planted
        return False, link_refused(link), evidence
    try:
        data = read_file(path, anchor)
    except Unreadable as err:
        if ctx.update_baselines:
            return _write_baseline(path, anchor, live,
                                   "was missing" if not os.path.lexists(path) else "was unreadable", evidence)
        if os.path.lexists(path):
            return False, f"baseline {err}", evidence
        saved = ctx.save_image(live, "actual")
        evidence["actual"] = saved
        return False, f"baseline {path} does not exist" + (f"; the current screen is in {saved}" if saved else ""), evidence
    with Image.open(io.BytesIO(data)) as img:
        baseline = img.convert("RGB")
    grab = ctx.screen if callable(ctx.screen) else None
    result, mask = compare_live(baseline, live, grab, threshold=check.threshold, masks=check.masks)
    evidence.update(changed=result.changed, share=round(result.share, 6), largest_region=result.largest,
                    regions=[r.model_dump() for r in result.regions[:10]])
    passed = (not result.size_mismatch and result.share <= check.tolerance and result.largest <= check.max_region)
    if result.changed:
        evidence["diff"] = ctx.save_image(diff_image(live, mask, result, check.masks), "diff")
    if passed:
        return True, f"matches {path.name} ({result.summary()})", evidence
    if ctx.update_baselines:
        return _write_baseline(path, anchor, live, f"differed ({result.summary()})", evidence)
    if result.size_mismatch:
        return False, f"{path.name} is {baseline.width}x{baseline.height}, the screen {live.width}x{live.height}", evidence
    why = (f"largest change {result.largest} px > {check.max_region}" if result.largest > check.max_region
           else f"{result.share:.3%} changed > tolerance {check.tolerance:.3%}")
    shown = f"; diff image {evidence['diff']}" if evidence.get("diff") else ""
    return False, f"differs from {path.name}: {why} ({result.summary()}){shown}", evidence


def _write_baseline(path: Path, anchor: Path, live: Image.Image, why: str, evidence: dict[str, Any]) -> Outcome:
    """--update-baselines: the current screen becomes the baseline (written whole or not at all).

    Reached from the anchor folder by folder without following links (as
    reads are), written to a new file beside it and renamed over it: a link
    at ``path`` is replaced, never followed. A baseline that was there keeps
    its permissions; a new one is 0644, shared like any source file.
    """
    try:
        folder = open_folder(path, anchor, create=True)
    except Unreadable as err:
        return False, f"baseline not written: {err}", evidence
    tmp = f".{path.name}.{secrets.token_hex(6)}"
    try:
        try:
            old = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
            mode = stat.S_IMODE(old.st_mode) if stat.S_ISREG(old.st_mode) else 0o644
        except FileNotFoundError:
            mode = 0o644
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as f:
                live.save(f, format="PNG")
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
            raise
    finally:
        os.close(folder)
    evidence["updated"] = True
    return True, f"baseline {path.name} {why}: written from the current screen (--update-baselines)", evidence


_VERDICT = re.compile(r"^\W*(yes|no)\b[\s,.:;!-]*(.*)$", re.IGNORECASE | re.DOTALL)
QUESTION = ('Look at the current screen and judge this statement: "{statement}". '
            'Answer with "yes" or "no" first, then one short sentence saying why.')


def expect(check: m.Expect, ctx: CheckContext) -> Outcome:
    if ctx.ask is None:
        raise UsageError("an expect check needs a model (give a backend), or use text_visible instead")
    answer = ctx.ask(QUESTION.format(statement=check.expect)).strip()
    verdict = _VERDICT.match(answer)
    evidence = {"answer": answer}
    if verdict is None:
        return False, f"the model did not answer yes or no: {answer[:160]!r}", evidence
    yes = verdict.group(1).lower() == "yes"
    reason = " ".join(verdict.group(2).split())[:200] or "(no reason given)"
    evidence.update(verdict="yes" if yes else "no", reason=reason)
    return yes, f"model says {'yes' if yes else 'no'}: {reason}", evidence


EVALUATORS: dict[str, Callable[[Any, Any], Outcome]] = {"text_visible": text, "text_absent": text, "window_title": window,
              "screenshot_matches": screenshot, "expect": expect, "element": element}

