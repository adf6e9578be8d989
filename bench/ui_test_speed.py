"""One small UI test, three ways: deskpilot without a model, the peers' pyautogui + OCR, the action cache.

The test (mousepad, GTK3, which publishes an accessibility tree): open ``notes.txt`` from a
shared folder; 5 assertions; 10 clicks/keys (a click into the text area, four lines typed,
three Enters, ctrl+Home, ctrl+s); then the saved file is checked.

    A1  the File menu is shown                       (before any action)
    A2  the text area shows "Shopping list"           (after the first line)
    A3  the text area shows "apples 3"                (after the second)
    A4  the text area shows "total 8"                 (after the fourth)
    A5  the title says the file is saved (no ``*``)   (after ctrl+s)

Ways, each in its own process with its own desk (Xvfb + openbox + mousepad, 1280x800):

- (a) ``deskpilot``: a pytest test using the plugin's ``desktop`` fixture, locators and
  ``expect(...)`` (``bench/_ui_test_deskpilot.py``), no model.
- (t) the same with ``pilot.expect_text`` for A2-A4 instead of the locator: the tree answers
  while the document is one line, OCR (incremental, woken by X DAMAGE) once it is several.
- (b) ``pyautogui+OCR``: the way peers script desktops (``bench/_pyautogui_peer.py``):
  ``pyautogui`` with its shipped defaults (0.1 s PAUSE, screenshots through scrot) and
  RapidOCR with its defaults on every screenshot; a text assertion polls screenshot + OCR until
  the text shows; the saved title is asked of the window manager through xdotool (OCR lost the
  long title now and then). The click goes to a fixed point, as a recorded peer script would.
- (c) ``cache``: the agent loop replaying a cached run of the same steps (GLM-4.5V replies,
  recorded once by a scripted backend, not timed) with zero model calls; the 5 assertions
  and the file check are the run's checks, evaluated after DONE.

Per way: wall time and CPU of the test body (the driver process, its children, the X server
and the app: every process of the way's tree), each assertion's latency, and the whole
process (start-up of Python, the desk and the app included). Usage:
``python bench/ui_test_speed.py [--rounds 1]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZE = (1280, 800)
LINES = ["Shopping list", "apples 3", "pears 5", "total 8"]
EXPECTED_FILE = "\n".join(LINES)
TEXT_AREA_POINT = (640, 400)  # the middle of mousepad's text area at 1280x800 (a peer's recorded click)
ASSERTIONS = ["A1 File menu", "A2 'Shopping list'", "A3 'apples 3'", "A4 'total 8'", "A5 saved title"]
OUT_ENV = "UI_BENCH_OUT"  # where a way's process writes its figures (JSON)


def tree_cpu() -> float:
    """CPU seconds of this process, its live descendants and every child they reaped (Xvfb, the app, scrot...)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # gone meanwhile: its parent's children_* time has it
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class Timer:
    """The body's wall and CPU, and each assertion's latency, written as JSON to ``$UI_BENCH_OUT``."""

    def __init__(self) -> None:
        self.latency: list[float] = []
        self.wall = self.cpu = 0.0
        self.notes: dict[str, Any] = {}

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), tree_cpu()

    def assertion(self, check) -> None:
        started = time.perf_counter()
        check()
        self.latency.append((time.perf_counter() - started) * 1000)

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = tree_cpu() - self._cpu

    def save(self) -> None:
        out = os.environ.get(OUT_ENV)
        if out:
            Path(out).write_text(json.dumps({"wall": self.wall, "cpu": self.cpu, "latency": self.latency,
                                             **self.notes}))


def check_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8").rstrip("\n")
    assert text == EXPECTED_FILE, f"the saved file holds {text!r}"


# -- (b) the peers' way ----------------------------------------------------------------------------
def way_peer(share: Path) -> None:
    """Start the desk, then drive it the peers' way from this process (pyautogui binds $DISPLAY at import)."""
    from deskpilot.agent.desk.session import Session

    notes = share / "notes.txt"
    notes.write_text("", encoding="utf-8")
    with Session(SIZE, apps=[f"mousepad {notes}"], shares=[str(share)]) as desk:
        os.environ.update({"DISPLAY": desk.display, "XAUTHORITY": str(desk.sandbox.xauthority),
                           "XDG_SESSION_TYPE": "x11"})
        sys.path.insert(0, str(HERE))
        import _pyautogui_peer as peer

        peer.ocr_engine()  # loaded before the clock starts (a peer's suite loads it once)
        timer = Timer()
        timer.start()
        peer.ui_test(timer, TEXT_AREA_POINT, LINES)
        check_file(notes)
        timer.stop()
        timer.notes["ocr_reads"] = peer.OCR_READS
        timer.save()


# -- (c) the action cache ------------------------------------------------------------------------
def _reply(explain: str, call: str) -> str:
    return f"{explain}\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def replies() -> list[str]:
    x, y = (round(v * 1000 / s) for v, s in zip(TEXT_AREA_POINT, SIZE))
    out = [_reply("The document is empty; I click into the text area.",
                  f"left_click(start_box='[{x},{y}]', element_info='text area')")]
    for n, line in enumerate(LINES):
        out.append(_reply(f"I type line {n + 1}.", f"type(content='{line}')"))
        if n < len(LINES) - 1:
            out.append(_reply("A new line.", "key(keys='enter')"))
    out.append(_reply("Back to the top.", "key(keys='ctrl+home')"))
    out.append(_reply("I save the file.", "key(keys='ctrl+s')"))
    out.append(_reply("The file is saved.", "DONE()"))
    return out


def cache_checks(notes: Path) -> list[dict[str, Any]]:
    return [{"element": {"role": "menu", "name": "File", "exact": True}, "state": "visible"},
            {"element": {"role": "textbox", "text": LINES[0]}},
            {"element": {"role": "textbox", "text": LINES[1]}},
            {"element": {"role": "textbox", "text": LINES[3]}},
            {"element": {"role": "frame", "name": f"{notes} - Mousepad", "exact": True}},
            {"file": str(notes), "contains": EXPECTED_FILE}]


TASK = "Write the shopping list (Shopping list, apples 3, pears 5, total 8) into notes.txt and save it"


def _cached_run(share: Path, cache: Path, backend, run_dir: Path, timer: Timer | None = None):
    from deskpilot.agent.checks import parse_checks
    from deskpilot.agent.desk.session import Session
    from deskpilot.agent.loop.agent import Agent
    from deskpilot.agent.records.cache import RunCache

    notes = share / "notes.txt"
    notes.write_text("", encoding="utf-8")
    with Session(SIZE, apps=[f"mousepad {notes}"], shares=[str(share)]) as desk:
        # the desk counts as ready before openbox has given mousepad the focus; its caret shows only once it
        # has: a fingerprint taken before that differs from the live screen by the caret (a cache miss)
        from deskpilot import expect

        expect(desk.get_by_role("textbox"), timeout=20).to_be_focused()
        with Agent(backend, desk, run_dir=run_dir, cache=RunCache(cache, TASK), checks=parse_checks(cache_checks(notes)),
                   report=False) as agent:
            if timer is not None:
                timer.start()
            result = agent.run(TASK)
            if timer is not None:
                timer.stop()
    return result


class RecordedModel:
    """A SIMULATOR of the model for a cache miss: answers step k with the recorded reply k, at once.

    A cached run leaves the cache at the first step whose screen disagrees and asks the model from
    there; this answers as the recording did, so the run goes on and the bench counts the calls
    (the target is zero). Which step is asked is read from the run's own trajectory (steps so far).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.calls, self.asked = run_dir, 0, []

    def complete(self, request):
        from deskpilot.model_backend.types import Reply

        path = self.run_dir / "trajectory.jsonl"
        done = sum(1 for line in path.read_text().splitlines() if '"kind": "step"' in line) if path.exists() else 0
        self.calls += 1
        self.asked.append(done + 1)
        return Reply(content=replies()[done])

    async def acomplete(self, request):
        return self.complete(request)

    def close(self) -> None:
        pass


def way_cache(share: Path) -> None:
    from deskpilot.model_backend import ScriptedBackend

    cache = share.parent / "cache.json"
    first = _cached_run(share, cache, ScriptedBackend(replies(), keep_requests=False), share.parent / "record")
    assert first.ok, f"the recording run failed: {first.reason}"
    backend = RecordedModel(share.parent / "cached")
    timer = Timer()
    result = _cached_run(share, cache, backend, share.parent / "cached", timer)
    assert result.ok, f"the cached run: {result.status} {result.reason}"
    checks = result.checks[:5]
    assert all(c["passed"] for c in result.checks), result.checks
    timer.latency = [float(c.get("ms", 0.0)) for c in checks]
    timer.notes.update(model_calls=backend.calls, missed_at_step=backend.asked[:1],
                       saved=result.totals.get("model_calls_saved"), steps=result.steps)
    timer.save()


# -- (a) deskpilot, through pytest -----------------------------------------------------------------
def _pytest(share: Path, which: str) -> None:
    import pytest

    code = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(HERE), "--basetemp", str(share.parent / "pt"),
                        "-k", which, str(HERE / "_ui_test_deskpilot.py")])
    if code != 0:
        raise SystemExit(f"the deskpilot test failed (pytest exit {code})")


def way_deskpilot(share: Path) -> None:
    _pytest(share, "elements")


def way_deskpilot_text(share: Path) -> None:
    _pytest(share, "text")


WAYS = {"a": ("deskpilot (pytest, no model)", way_deskpilot),
        "t": ("deskpilot, text waits (tree, else OCR)", way_deskpilot_text),
        "b": ("pyautogui + RapidOCR (peers)", way_peer),
        "c": ("action cache, 0 model calls", way_cache)}


def run_way(way: str) -> dict[str, Any]:
    """One way in a fresh process; its figures plus the whole process's wall and CPU (every process it reaped)."""
    with tempfile.TemporaryDirectory(prefix=f"uibench-{way}-") as tmp:
        out = Path(tmp) / "out.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--way", way, "--tmp", tmp],
                              env={**os.environ, OUT_ENV: str(out)}, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise SystemExit(f"way {way} failed (exit {done.returncode}):\n" + "\n".join(tail))
        figures = json.loads(out.read_text())
    figures["whole_wall"] = wall
    figures["whole_cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return figures


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    med = statistics.median
    rows = ["| way | body wall s | body CPU s | " + " | ".join(f"{a} ms" for a in ASSERTIONS)
            + " | whole process wall s / CPU s |", "|---|---|---|" + "---|" * len(ASSERTIONS) + "---|"]
    for way, runs in results.items():
        lat = [med(r["latency"][i] for r in runs) for i in range(len(ASSERTIONS))]
        rows.append(f"| ({way}) {WAYS[way][0]} | {med(r['wall'] for r in runs):.2f} | {med(r['cpu'] for r in runs):.2f} | "
                    + " | ".join(f"{v:.0f}" for v in lat)
                    + f" | {med(r['whole_wall'] for r in runs):.1f} / {med(r['whole_cpu'] for r in runs):.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--ways", default="atbc")
    parser.add_argument("--way", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.way:  # inside one way's process
        share = Path(args.tmp) / "share"
        share.mkdir()
        WAYS[args.way][1](share)
        return
    results: dict[str, list[dict[str, Any]]] = {w: [] for w in args.ways}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for way in args.ways:
            results[way].append(run_way(way))
            print(f"({way}) {json.dumps(results[way][-1])}", file=sys.stderr)
    print(f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; {args.rounds} round(s)\n")
    print(table(results))
    if "a" in results and "b" in results:
        ratio = statistics.median(r["wall"] for r in results["b"]) / statistics.median(r["wall"] for r in results["a"])
        print(f"\n(b) / (a) body wall time: {ratio:.1f}x (target >= 5x)")
    skip = ("wall", "cpu", "latency", "whole_wall", "whole_cpu")
    notes = {w: [{k: v for k, v in r.items() if k not in skip} for r in runs] for w, runs in results.items()}
    print(f"\nper round: {json.dumps(notes)}")


if __name__ == "__main__":
    main()
