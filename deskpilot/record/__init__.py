"""`deskpilot record`: a person shows a task on a sandbox (over VNC or the live page), a workflow comes out.

The sandbox is the one `run` would get (size, apps, shares); the person drives
it through VNC (the printed line, or noVNC in the live page); the X server's
RECORD extension reports every key and button, whatever client sent it. At
each click the widget under the pointer is asked of the accessibility bus (an
element step where it has a unique role and name), the screen as it was at the
press is kept (``presses.py``; for OCR: ``click_text`` where the click hit
readable text) and at each event the window titles are read (new titles become
``wait_for_window``). Ctrl-C, SIGTERM or "Hand back" in the page ends it: the
workflow file is written, and the run folder keeps one screenshot per step
(a normal run folder with a report).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, Field

from deskpilot.perception.gestures import DOUBLE_CLICK_PX, WHEEL
from deskpilot.perception.inputs import InputEvent
from deskpilot.record.compile import Compiled, Seen, brace, compile_steps, dialogs_in, mark_values, ocr_text_at
from deskpilot.record.presses import PressFrames
from deskpilot.record.tree import TreeWatcher

from deskpilot.record.writers import output_format, portable_desktop, rebased, write_output, write_workflow

__all__ = ["Recording", "RecordResult", "compile_steps", "output_format", "portable_desktop", "rebased",
           "write_output", "write_workflow"]


class RecordResult(BaseModel):
    """What a recording produced."""

    workflow: Path
    format: str = "workflow"
    run_dir: Path
    steps: int
    events: int
    notes: list[str] = Field(default_factory=list)


class Recording:
    """One recording session on an open ``Session``: ``start()``, then ``finish(...)`` writes the files."""

    def __init__(self, desk, *, ocr: bool = True, elements: bool = True, shares: list[Path] | None = None,
                 variables: dict[str, str] | None = None, secrets: dict[str, str] | None = None,
                 check_folder: Path | None = None) -> None:
        from deskpilot.record.files import share_files, workbooks

        from deskpilot.perception.inputs import InputRecorder
        from deskpilot.sandbox import x11

        self.desk = desk
        self.ocr = ocr
        self._tree = TreeWatcher(desk.a11y) if elements and desk.sandbox.a11y_address is not None else None
        self.seen: list[Seen] = []
        self.shares = list(shares or [])
        self._files = share_files(self.shares)
        self._cells = workbooks(self._files)
        self.variables = dict(variables or {})  # name -> value: typed values become {name}
        self.secrets = dict(secrets or {})  # name -> value (from --secret): never written
        self.secret_fields: list[str] = []
        self.notes: list[str] = []  # what the person should look at in the file (said at the end)  # names given to what was typed into password fields
        self.check_folder = check_folder or Path.cwd()  # file checks name their files relative to it
        self.message = ""  # what the page shows about the last mark (check armed, check added, ...)
        self._lock = threading.RLock()
        self._armed = False  # the next click becomes a check
        self._armed_at = 0  # the X server's time when it was armed
        self._grabbed = False
        self._secret_next = False  # the next typing burst is a secret (marked in the page)
        self._burst_secret: str | None = None
        self._clicked_password = False  # the last click hit a password field, and no key moved the focus since
        self._focus_path: str | None = None  # the widget that had the focus at the last read
        self._tabbed = False  # a Tab since that read: the focus has moved (once the app has handled it)
        self._x = x11.connect(desk.sandbox.display, desk.sandbox.xauthority)
        self._grab_x = x11.connect(desk.sandbox.display, desk.sandbox.xauthority)
        self._stamp: Any = None  # a window of ours, for reading the server's time
        self.initial = self._windows()
        self._windows_seen: set[int] = set(self.initial)
        self._listed: set[int] = set(self.initial)  # windows already given to an event
        self._pending: dict[int, str] = {}  # new windows whose map comes after the event that saw them
        self._roles: dict[str, str] = {}  # dialog title -> role, as the tree showed them
        self._pressed_at: tuple[int, int] | None = None  # the last left press, to tell a drag from a click
        self._recorder = InputRecorder(desk.sandbox.display, desk.sandbox.xauthority, on_event=self._on_event)
        self._presses = PressFrames(desk.sandbox.display, desk.sandbox.xauthority)

    def start(self) -> "Recording":
        if self._tree is not None:
            self._tree.start()
        self._presses.start()  # before the stream: every press it reports was held for its frame
        if not self._presses.active:
            self.notes.append(f"clicks were read off the screen when the recorder got to them, which can be late "
                              f"({self._presses.error}): look over the click_text steps")
        self._recorder.start()
        return self

    def _frame_at(self, event) -> Any:
        """The screen of a click: as it was when the press happened (``PressFrames``), else as it is now."""
        if event.detail == 1 and self._presses.active:
            frame = self._presses.frame_at(event.server_time)
            if frame is not None:
                return frame
        return self.desk.observe().image.copy()

    def _windows(self) -> dict[int, str]:
        from deskpilot.sandbox import x11

        try:
            return {wid: x11.window_title(self._x, wid) for wid in x11.client_windows(self._x)}
        except Exception:  # a window went away while we read: try again at the next event
            return {}

    def _on_event(self, event) -> None:
        if event.kind == "button_release":
            self._release_grab()
            self._note_drag(event)
            return
        if event.kind not in ("key_press", "button_press"):
            return
        seen_now = self._windows()  # first: as near the event's time as can be
        windows = self._mapped_before(seen_now)
        if event.kind == "button_press" and self._armed and _after(event.server_time, self._armed_at):
            self._check_at(event)  # (a press from before "Add check", read late, is still a click)
            return
        if event.kind == "button_press" and event.detail == 1:
            self._pressed_at = (event.x, event.y)
            self._tabbed = False  # a click decides the focus now (``_clicked_password``), not the Tab before it
        if event.kind == "button_press" and event.detail in WHEEL:  # a notch: no screen, no widget to name
            with self._lock:
                self.seen.append(Seen(event=event, windows=windows))
            return
        frame = self._frame_at(event) if event.kind == "button_press" else None
        element = None
        if self._tree is not None:
            if event.kind == "button_press" and event.detail == 1:
                element = self._tree.element_at(event.x, event.y)
                # where the click went, not where the focus is when this is read (it may be read late)
                self._clicked_password = self._tree.last_role == "password text"
            self._tree.poke()
        secret = self._secret_for(event) if event.kind == "key_press" else None
        self._roles.update(self._dialogs(seen_now))  # kept: a dialog may be waited for after it closed
        dialogs = dict(self._roles)
        with self._lock:
            self.seen.append(Seen(event=event, windows=windows, frame=frame, element=element, secret=secret,
                                  dialogs=dialogs))

    def _note_drag(self, event) -> None:
        """A left button released away from its press was a drag: workflows have no drag step, so say so."""
        if event.detail != 1 or self._pressed_at is None:
            return
        (x, y), self._pressed_at = self._pressed_at, None
        if max(abs(event.x - x), abs(event.y - y)) > DOUBLE_CLICK_PX:
            self.notes.append(f"a drag from ({x}, {y}) to ({event.x}, {event.y}) was written as a click at its start "
                              "(workflow files have no drag step): check that step")

    def _mapped_before(self, windows: dict[int, str]) -> dict[int, str]:
        """The windows to wait for before this event's step: those there before and those mapped before it.

        Read late, the window list may already show what the event caused (ctrl+o's dialog): a new window
        whose map the X RECORD stream has not reached yet came after this event, so it waits (with the
        title read now) for the first event after its map, even if it has closed again by then."""
        for wid, title in windows.items():
            if wid not in self._listed and (title or wid not in self._pending):
                self._pending[wid] = title
        mapped = self._recorder.mapped
        ready = {wid: title for wid, title in self._pending.items() if wid in mapped}
        for wid in ready:
            del self._pending[wid]
        self._listed.update(ready)
        return {**{wid: title for wid, title in windows.items() if wid in self._listed}, **ready}

    def _dialogs(self, windows: dict[int, str]) -> dict[str, str]:
        """Which windows are dialogs (title -> role); a window new since the last event is asked of the bus now
        (the kept tree may be from before it opened)."""
        if self._tree is None:
            return {}
        new = [title for wid, title in windows.items() if wid not in self._windows_seen and title]
        self._windows_seen.update(windows)
        found = dialogs_in(self._tree.latest)
        if any(title not in found for title in new):
            found.update(dialogs_in(self._tree.fresh()))
        return found

    # -- secrets ----------------------------------------------------------------------------------
    def _secret_for(self, event) -> str | None:
        """The secret name of a typed key: set at the first key of a burst, if the page marked the burst
        secret, the last click hit a password field (no key moved the focus since), or the focused widget
        is one (read now: late if the recorder lags behind the typing); the rest of the burst keeps it."""
        if not event.char or event.state & 12:  # not typing (a chord, Enter, a special key): the burst ends
            if event.keysym == "BackSpace" and not event.state & 12:
                return self._burst_secret  # edits the secret (its value, kept in memory, must match the file's)
            if event.keysym not in ("Shift_L", "Shift_R", "Caps_Lock"):
                self._burst_secret = None
                self._clicked_password = False  # Tab, Enter, a shortcut: the focus may have moved
                self._tabbed = self._tabbed or event.keysym in ("Tab", "ISO_Left_Tab")
            return None
        with self._lock:
            previous = self.seen[-1].event if self.seen else None
        continuing = previous is not None and previous.kind == "key_press" and (previous.char or previous.keysym in (
            "BackSpace", "Shift_L", "Shift_R"))
        if continuing and not self._secret_next:
            return self._burst_secret
        if self._secret_next or self._clicked_password or self._focus_is_password(event):
            self._secret_next = False
            self._burst_secret = self._new_secret_name()
            self.message = f"typing into a secret field: written as {{{self._burst_secret}}}, its value is not kept"
        else:
            self._burst_secret = None
        return self._burst_secret

    def _focus_is_password(self, event) -> bool:
        """Whether a password field has the focus now; a read well after the key (the recorder lagging
        behind fast input) may see a later focus, so such a burst is named in ``notes`` for a look.

        A read can also come too early: the app may not have handled the Tab typed before this burst yet
        (a loaded machine), and still show the field the Tab leaves, which wrote a password in clear. So
        after a Tab, a read that shows the same field as the last read waits until the focus moves.
        A read the bus could not finish cannot rule a password out: if the screen has a password field,
        the burst counts as one (a typed value in the file in clear is worse than a name to fill in), and
        the notes say so.
        """
        if self._tree is None:
            return False
        snap = self._focus_snapshot()
        deadline = time.monotonic() + FOCUS_MOVE_S
        while (snap is not None and self._tabbed and _focused(snap) == self._focus_path
               and not _password_focused(snap) and time.monotonic() < deadline):
            time.sleep(0.05)  # the app has not moved the focus for the Tab yet: look again
            snap = self._focus_snapshot()
        self._tabbed = False
        if snap is not None and _password_focused(snap):
            self._focus_path = _focused(snap)
            return True
        if snap is None or snap.truncated or snap.silent:
            known = [*(snap.nodes if snap is not None else []), *(self._tree.latest.nodes if self._tree.latest else [])]
            if any(n.role == "password text" for n in known):
                self.notes.append("the focus could not be read in time while a password field was on screen: that "
                                  "typing was written as a secret; if it was not one, put the text back in the file")
                return True
            return False
        self._focus_path = _focused(snap)
        with self._lock:
            late = self._server_time() - event.server_time if event.server_time else 0
        if late > LATE_MS and any(n.role == "password text" for n in snap.nodes):
            self.notes.append(f"typing read {late / 1000:.1f} s late on a screen with a password field: look "
                              "over the file (mark a password with 'Next typing is secret' or --secret)")
        return False

    def _focus_snapshot(self):
        from deskpilot.perception.a11y import A11yError

        try:
            return self.desk.a11y.snapshot(time_limit=FOCUS_READ_S)
        except (A11yError, OSError, ValueError):
            return None

    def _new_secret_name(self) -> str:
        name = "PASSWORD" if not self.secret_fields else f"PASSWORD_{len(self.secret_fields) + 1}"
        self.secret_fields.append(name)
        return name

    def mark_secret_next(self) -> str:
        """The page's "Next typing is secret": the next burst is written as a secret's {NAME}."""
        self._secret_next = True
        self.message = "the next typing is secret"
        return self.message

    def mark_variable(self, name: str, value: str) -> str:
        """Typed occurrences of ``value`` are written as ``{name}`` (the workflow's vars keep the value)."""
        from deskpilot.errors import UsageError

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not value:
            raise UsageError("a variable has a name (letters, digits, _) and a value that was typed")
        self.variables[name] = value
        self.message = f"typed {value!r} is written as {{{name}}}"
        return self.message

    # -- checks ------------------------------------------------------------------------------------
    def arm_check(self) -> str:
        """The page's "Add check": the next click becomes a check, and does not reach the app.

        The pointer is grabbed by the recorder's own X connection, so the
        click lands here (the RECORD extension still reports it) and not in
        the app; it is let go at the release.
        """
        from Xlib import X

        deadline = time.monotonic() + 2.0  # a click in flight holds the pointer until its release arrives
        while True:
            with self._lock:
                if not self._grabbed:
                    root = self._grab_x.screen().root
                    status = root.grab_pointer(False, X.ButtonPressMask | X.ButtonReleaseMask, X.GrabModeAsync,
                                               X.GrabModeAsync, X.NONE, X.NONE, X.CurrentTime)
                    self._grab_x.sync()
                    self._grabbed = status == X.GrabSuccess
                if self._grabbed:
                    self._armed_at = self._server_time()
                    self._armed = True
                    self.message = "click what to check: a widget (its state) or a text (visible)"
                    return self.message
                if time.monotonic() > deadline:
                    self.message = "the pointer is held by the app (a menu is open?): close it and try again"
                    return self.message
            time.sleep(0.05)  # the server says nothing when a grab ends: ask again

    def _server_time(self) -> int:
        """The X server's time now: a property change on a window of our own reports it (the usual way)."""
        from Xlib import X, Xatom

        if self._stamp is None:
            self._stamp = self._grab_x.screen().root.create_window(
                -10, -10, 1, 1, 0, X.CopyFromParent, event_mask=X.PropertyChangeMask, override_redirect=True)
        self._stamp.change_property(Xatom.WM_NAME, Xatom.STRING, 8, b"deskpilot-record")
        self._grab_x.flush()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not self._grab_x.pending_events():
                time.sleep(0.005)  # the reply is on its way (a local X server: microseconds)
                continue
            event = self._grab_x.next_event()
            if event.type == X.PropertyNotify and event.window == self._stamp:
                return int(event.time)
        return 0  # unknown: any later press is the check

    def _release_grab(self) -> None:
        with self._lock:
            if self._grabbed and not self._armed:
                self._grab_x.ungrab_pointer(0)
                self._grab_x.sync()
                self._grabbed = False

    def _check_at(self, event) -> None:
        """The armed click: an element check where the tree names the widget, else the text under it."""
        frame = self.desk.observe().image.copy()
        check = self._element_check(event.x, event.y)
        if check is None and event.detail == 1:
            text = ocr_text_at(frame, event.x, event.y)
            check = {"text_visible": brace(text)} if text else None
        with self._lock:
            self._armed = False
            if check is None:
                self.message = "nothing to check there (no named widget, no readable text): try again"
                return
            self.seen.append(Seen(event=event, windows=self._windows(), frame=frame, step={"check": check}))
            self.message = "check added: " + json.dumps(check)

    def _element_check(self, x: int, y: int) -> dict[str, Any] | None:
        if self._tree is None:
            return None
        from deskpilot.perception.a11y import A11yError, Query, find

        target = self._tree.element_at(x, y)
        if target is None:
            return None
        try:
            snap = self.desk.a11y.snapshot(time_limit=1.0)
        except (A11yError, OSError, ValueError):
            return None
        name = target["name"].replace("{{", "{").replace("}}", "}")
        nodes = [n for n in find(snap, Query(role=target["role"], name=name,
                                             exact=bool(target.get("exact")))) if n.visible]
        if len(nodes) != 1:
            return None
        node = nodes[0]
        if "checkable" in node.states or node.role in ("check box", "radio button", "toggle button"):
            state = "checked" if "checked" in node.states else "unchecked"
        elif node.role in ("label", "static", "heading"):
            state = "visible"
        else:
            state = "enabled" if node.enabled else "disabled"
        return {"element": target, "state": state}

    def add_file_checks(self) -> str:
        """The page's "Check saved files": a check for each share file written since the last time."""
        checks = self.file_checks(self.check_folder)
        with self._lock:
            for compiled in checks:
                self.seen.append(Seen(event=_mark_event(), windows=self._windows(), step=compiled.step))
            names = list(dict.fromkeys(c.step["check"]["file"] for c in checks))
            self.message = ("file check(s) added: " + ", ".join(names)) if names else \
                "no file in the shares was written since the start (or the last file check)"
            return self.message

    def status(self) -> dict[str, Any]:
        """What the page shows: steps so far, marks, the last message (never a secret's value)."""
        with self._lock:
            return {"events": len(self.seen), "armed": self._armed, "secret_next": self._secret_next,
                    "variables": sorted(self.variables), "secrets": sorted(self.secrets) + self.secret_fields,
                    "message": self.message}

    def command(self, body: dict[str, Any]) -> str:
        """One command from the page: check, files, secret, or var (with name and value)."""
        what = body.get("do")
        if what == "check":
            return self.arm_check()
        if what == "files":
            return self.add_file_checks()
        if what == "secret":
            return self.mark_secret_next()
        if what == "var":
            return self.mark_variable(str(body.get("name", "")), str(body.get("value", "")))
        from deskpilot.errors import UsageError

        raise UsageError("do is check, files, secret or var")

    def stop(self) -> None:
        self._recorder.stop()
        self._presses.stop()
        with self._lock:
            if self.seen and self._pending:  # opened by the last event: waited for after its step
                self.seen[-1].after.update(self._pending)
            self._armed = False
            self._release_grab()
        try:
            self._grab_x.close()
        except Exception:
            pass
        if self._tree is not None:
            self._tree.stop()
        try:
            self._x.close()
        except Exception:
            pass

    def file_checks(self, folder: Path) -> list[Compiled]:
        """Check steps for each share file written since the start, named relative to ``folder``."""
        from deskpilot.record.files import changed_files, file_checks, share_files, workbooks

        now = share_files(self.shares)
        checks = [Compiled(step={"check": check}) for path in changed_files(self._files, now)
                  for check in file_checks(path, folder, self._cells.get(path))]
        self._files, self._cells = now, workbooks(now)
        return checks

    def compile(self, element_step=None) -> list[Compiled]:
        with self._lock:
            seen = list(self.seen)
        steps = compile_steps(seen, self.desk.size, text_at=ocr_text_at if self.ocr else None,
                              element_step=element_step, initial=self.initial)
        return mark_values(steps, {**self.variables, **self.secrets, **_secret_values(seen)})

    @property
    def secret_names(self) -> list[str]:
        """The workflow's ``secrets``: --secret names and the names of password fields typed into."""
        return sorted(self.secrets) + [n for n in self.secret_fields if n not in self.secrets]


LATE_MS = 500  # a focus read this far behind its key may see a later focus
FOCUS_MOVE_S = 5.0  # how long a read after a Tab waits for the app to move the focus


def _focused(snap) -> str | None:
    """The path of the focused widget in a snapshot (None if none says it has the focus)."""
    return next((n.path for n in snap.nodes if "focused" in n.states), None)


def _password_focused(snap) -> bool:
    return any(n.role == "password text" and "focused" in n.states for n in snap.nodes)
FOCUS_READ_S = 3.0  # how long the bus may take to say what has the focus (1 s was cut short under load)


def _after(server_time: int, since: int) -> bool:
    """An event at ``server_time`` came at or after ``since`` (X's ms clock; 0: unknown, so yes)."""
    return not server_time or not since or server_time >= since


def _secret_values(seen: list[Seen]) -> dict[str, str]:
    """What was typed into each secret field (in memory only: to redact it from checks, e.g. a saved file)."""
    values: dict[str, list[str]] = {}
    for item in seen:
        if item.secret and item.event.kind == "key_press":
            typed = values.setdefault(item.secret, [])
            if item.event.char:
                typed.append(item.event.char)
            elif item.event.keysym == "BackSpace" and typed:
                typed.pop()
    return {name: "".join(chars) for name, chars in values.items() if chars}


def _mark_event() -> InputEvent:
    """The place of a step made in the page (a file check) among the input events."""
    return InputEvent(kind="mark", detail=0, x=0, y=0, state=0, time=time.monotonic())


def keep_run_folder(run_dir: Path, spec, steps: list[Compiled], say: Callable[[str], None], *,
                    desktop: dict[str, Any] | None = None, name: str = "recorded",
                    variables: dict[str, str] | None = None, secrets: list[str] | None = None) -> None:
    """The recording as a run folder: settings, one human record (and screenshot) per step, an end, a report,
    and the steps as a workflow (``recorded.yaml``) whatever format ``--out`` asked for."""
    from deskpilot.agent.records.models import EndRecord, HumanRecord, Status
    from deskpilot.agent.records.report import build_report
    from deskpilot.agent.records.trajectory import Trajectory, now_iso

    trajectory = Trajectory(run_dir)
    trajectory.write_settings({"task": "(recorded demonstration)", "dialect": "record", "backend": "a person",
                               "session": spec.model_dump(mode="json"), "screen_size": list(spec.size)})
    for n, compiled in enumerate(steps, 1):
        shot = trajectory.save_screenshot(compiled.frame, f"record_{n:03d}.png") if compiled.frame is not None else None
        line = yaml.safe_dump(compiled.step, default_flow_style=True, allow_unicode=True, width=1000).strip()
        trajectory.append(HumanRecord(after_step=0, time=now_iso(), note=line, screenshot_before=shot, history_line=line))
    trajectory.append(EndRecord(time=now_iso(), status=Status.DONE, reason="recording ended", steps=0))
    trajectory.close()
    if desktop is not None:
        write_workflow(run_dir / "recorded.yaml", name, desktop, steps, variables=variables, secrets=secrets)
    try:
        build_report(run_dir)
    except Exception as exc:  # the workflow file is what matters; say why the report is missing
        say(f"warning: no report.html: {type(exc).__name__}: {exc}")
