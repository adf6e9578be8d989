"""OSWorld's set-up steps, mapped onto a deskpilot desk (and performed there).

Mapping happens when the task file is read, so a task that needs something
this machine cannot do is skipped with the reason before any desk starts.
OSWorld presses keys by running ``python -c "import pyautogui; ..."`` inside
its VM; here that text is parsed with ``ast`` (never run): recognised calls
(``hotkey``, ``press``, ``typewrite``/``write``, ``scroll``, ``time.sleep``) become
deskpilot executor actions, anything else in it makes the task unsupported.
Other commands run inside the sandbox, with ``/home/user`` pointed at the
task's share.
"""

from __future__ import annotations

import ast
import os
import shutil
import time
from pathlib import Path
from typing import Any

from deskpilot.eval.osworld.plan import Step

HOME = "/home/user"
SLEEP_CAP = 10.0  # seconds: OSWorld waits for a VM; a step here waits for windows and files instead
RUN_TIMEOUT = 120.0
WINDOW_TIMEOUT = 120.0  # LibreOffice's first window on a loaded machine
OPEN_QUIET = 1.5  # seconds without drawing after an opened file's window appears
APP_FOR = {  # how a file type is opened (OSWorld uses the desktop's default app)
    ".xlsx": "localc", ".xls": "localc", ".ods": "localc", ".csv": "localc",
    ".docx": "lowriter", ".doc": "lowriter", ".odt": "lowriter", ".rtf": "lowriter",
    ".pptx": "loimpress", ".ppt": "loimpress", ".odp": "loimpress",
}


class Unsupported(Exception):
    """A step this machine cannot perform; the message is the skip reason (short, groupable)."""


def home_path(path: str, share: str) -> str:
    """An OSWorld VM path under /home/user, as the sandbox sees it (inside the task's share)."""
    if path == HOME or path.startswith(HOME + "/"):
        return share + path[len(HOME):]
    if path.startswith("~/"):
        return share + path[1:]
    return path


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise Unsupported("a pyautogui command with computed arguments") from None


def _call(call: ast.Call) -> list[Step]:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        raise Unsupported("a python command that is not a pyautogui key press")
    name = f"{func.value.id}.{func.attr}"
    args = [_literal(a) for a in call.args]
    kwargs = {k.arg: _literal(k.value) for k in call.keywords if k.arg}
    if name == "time.sleep" and len(args) == 1 and isinstance(args[0], (int, float)):
        return [Step(kind="sleep", seconds=min(float(args[0]), SLEEP_CAP))]
    if name == "pyautogui.hotkey" and args and all(isinstance(a, str) for a in args):
        return [Step(kind="keys", keys="+".join(args))]
    if name == "pyautogui.press" and args:
        keys = args[0] if isinstance(args[0], list) else [args[0]]
        presses = int(kwargs.get("presses", 1))
        if not all(isinstance(k, str) for k in keys):
            raise Unsupported("a pyautogui command with computed arguments")
        return [Step(kind="keys", keys=k, repeat=presses) for k in keys]
    if name == "pyautogui.scroll" and args and isinstance(args[0], int) and args[0] != 0:
        x, y = kwargs.get("x", args[1] if len(args) > 2 else None), kwargs.get("y", args[2] if len(args) > 2 else None)
        at = (int(x), int(y)) if isinstance(x, int) and isinstance(y, int) else None
        return [Step(kind="scroll", direction="up" if args[0] > 0 else "down", repeat=min(abs(args[0]), 100), at=at)]
    if name in ("pyautogui.typewrite", "pyautogui.write") and args and isinstance(args[0], str):
        return [Step(kind="type", text=args[0])]
    raise Unsupported(f"pyautogui call {func.attr} in a set-up command" if func.value.id == "pyautogui"
                      else f"python call {name} in a set-up command")


def pyautogui_steps(code: str) -> list[Step]:
    """The executor steps a ``python -c`` text of OSWorld's means; Unsupported if it does more."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        raise Unsupported("a python command that does not parse") from None
    steps: list[Step] = []
    for node in tree.body:
        if isinstance(node, ast.Import) and all(a.name in ("pyautogui", "time") for a in node.names):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            steps.extend(_call(node.value))
            continue
        raise Unsupported("a python command that is not a pyautogui key press")
    return steps


def command_steps(command: Any, shell: bool, share: str) -> list[Step]:
    """An ``execute``/``command`` step: pyautogui key presses, or a command to run in the sandbox."""
    if isinstance(command, str):
        if shell:
            argv = ["/bin/sh", "-c", command]
        else:
            import shlex

            argv = shlex.split(command)
    elif isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        argv = list(command)
    else:
        raise Unsupported("a set-up command that is not a list of strings")
    if len(argv) == 3 and Path(argv[0]).name in ("python", "python3") and argv[1] == "-c" and "pyautogui" in argv[2]:
        return pyautogui_steps(argv[2])
    argv = [a.replace(HOME, share) for a in argv]
    if shutil.which(argv[0]) is None:
        raise Unsupported(f"program not installed here: {Path(argv[0]).name}")
    return [Step(kind="run", argv=argv)]


def open_step(path: str, share: str) -> Step:
    target = os.path.normpath(home_path(path, share))
    app = APP_FOR.get(Path(target).suffix.lower())
    if app is None:
        raise Unsupported(f"opening a {Path(target).suffix or 'suffix-less'} file")
    if shutil.which(app) is None:
        raise Unsupported(f"program not installed here: {app}")
    return Step(kind="open", argv=[app, target], window=Path(target).name)


def launch_step(command: Any, shell: bool, share: str) -> Step:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) and shell else (
        command.split() if isinstance(command, str) else list(command))
    if not argv or shutil.which(argv[0]) is None:
        raise Unsupported(f"program not installed here: {Path(str(argv[0] if argv else '?')).name}")
    if Path(argv[0]).name in ("google-chrome", "chromium", "chromium-browser", "socat"):
        raise Unsupported("a browser step")
    return Step(kind="launch", argv=[a.replace(HOME, share) for a in argv])


# -- performing them on a desk ----------------------------------------------------------

def _activate(desk, title: str, strict: bool, timeout: float) -> None:
    """Raise and focus a window by title (EWMH _NET_ACTIVE_WINDOW, as wmctrl -a does)."""
    from Xlib import X
    from Xlib.protocol import event

    from deskpilot.errors import SandboxError
    from deskpilot.sandbox import x11

    conn = x11.connect(desk.display, getattr(desk.sandbox, "xauthority", None))
    try:
        deadline = time.monotonic() + timeout
        while True:
            found = [w for w in x11.client_windows(conn)
                     if (x11.window_title(conn, w) == title if strict else title in x11.window_title(conn, w))]
            if found:
                break
            if time.monotonic() > deadline:
                titles = [x11.window_title(conn, w) for w in x11.client_windows(conn)]
                raise SandboxError(f"no window titled {title!r} to activate (windows: {titles})")
            time.sleep(0.05)
        root = conn.screen().root
        msg = event.ClientMessage(window=conn.create_resource_object("window", found[0]),
                                  client_type=conn.intern_atom("_NET_ACTIVE_WINDOW"),
                                  data=(32, [2, X.CurrentTime, 0, 0, 0]))
        root.send_event(msg, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
        conn.flush()
    finally:
        conn.close()


def _run(desk, argv: list[str]) -> None:
    from deskpilot.errors import SandboxError

    handle = desk.launch(argv, wait=False, from_data=True)  # a third party wrote it: share paths only
    try:
        code = handle.wait(timeout=RUN_TIMEOUT)
    except Exception:
        handle.kill()
        raise SandboxError(f"set-up command {' '.join(argv)[:80]!r} did not finish within {RUN_TIMEOUT:g} s") from None
    if code != 0:
        raise SandboxError(f"set-up command {' '.join(argv)[:80]!r} exited with code {code}")


def _windows(desk) -> set[int]:
    from deskpilot.sandbox import x11

    conn = x11.connect(desk.display, getattr(desk.sandbox, "xauthority", None))
    try:
        return set(x11.client_windows(conn))
    finally:
        conn.close()


def _launch(desk, argv: list[str], timeout: float) -> None:
    """Start an app and wait for its first window to be drawn and still (or for it to exit: a helper
    program without a window). OSWorld sleeps after a launch; a window is what the agent needs."""
    from deskpilot.eval.ready import wait_ready
    from deskpilot.eval.suite import Ready
    from deskpilot.sandbox import x11

    before = _windows(desk)
    handle = desk.launch(argv, wait=False, from_data=True)  # a third party wrote it: share paths only
    deadline = time.monotonic() + timeout
    while not (new := _windows(desk) - before):
        if handle.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.05)
    conn = x11.connect(desk.display, getattr(desk.sandbox, "xauthority", None))
    try:
        title = x11.window_title(conn, min(new))
    finally:
        conn.close()
    wait_ready(desk, Ready(window=title, quiet=OPEN_QUIET, timeout=max(1.0, deadline - time.monotonic())))


def perform(desk, step: Step, timeout: float = WINDOW_TIMEOUT) -> None:
    """One mapped step on the desk; SandboxError (one line) when it cannot be done."""
    if step.kind == "keys":
        for _ in range(step.repeat):
            desk.key(step.keys)
    elif step.kind == "type":
        desk.type(step.text)
    elif step.kind == "scroll":
        width, height = desk.size
        x, y = step.at or (width // 2, height // 2)
        desk.scroll(min(x, width - 1), min(y, height - 1), direction=step.direction, amount=step.repeat)
    elif step.kind == "sleep":
        time.sleep(step.seconds)
    elif step.kind == "activate":
        _activate(desk, step.window, step.strict, timeout)
        desk.settle()
    elif step.kind == "run":
        _run(desk, step.argv)
    elif step.kind == "launch":
        _launch(desk, step.argv, timeout)
    elif step.kind == "open":
        from deskpilot.eval.ready import wait_ready
        from deskpilot.eval.suite import Ready

        desk.launch(step.argv, wait=False, from_data=True)
        # the title shows before the document is drawn and takes keys: wait until nothing is drawn for a while
        wait_ready(desk, Ready(window=step.window, quiet=OPEN_QUIET, timeout=timeout))


def mtimes(paths: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for p in paths:
        try:
            found[p] = os.stat(p).st_mtime_ns
        except OSError:
            found[p] = -1
    return found


def wait_saved(before: dict[str, int], timeout: float = 60.0, quiet: float = 0.5) -> None:
    """After a save key press: wait until each file changed, then until it stays unchanged for `quiet` s.

    OSWorld sleeps 0.5 s after ctrl+s; on a loaded machine LibreOffice takes
    longer, so the file itself is watched. A file that never changes is left
    as it is (its check then fails on what the app left).
    """
    deadline = time.monotonic() + timeout
    waiting = dict(before)
    while waiting and time.monotonic() < deadline:
        now = mtimes(list(waiting))
        waiting = {p: m for p, m in waiting.items() if now[p] == m}
        if waiting:
            time.sleep(0.05)
    last, since = mtimes(list(before)), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline + quiet:
        time.sleep(0.05)
        now = mtimes(list(before))
        if now != last:
            last, since = now, time.monotonic()
