"""The accessibility tree against pixels: what it costs and how fast it answers.

1. The bus: sandbox start-up with and without ``accessibility`` (taking turns,
   median; the bus starts while openbox does, so the difference is what it
   adds), and the memory of the bus processes once an app has registered
   (PSS of the bus's bubblewrap, its tiny init, dbus-daemon and the AT-SPI
   registry, from /proc/PID/smaps_rollup).
2. A locator query on a GTK3 app (tests/apps/gtk_form.py):
   ``get_by_role("button", name="Save").count()``, median.
3. A bounded snapshot of LibreOffice Calc with a sheet open, median (and the
   first snapshot of a new reader, which remembers nothing yet).
4. ``text_visible`` on the same GTK screen through the tree and through OCR,
   side by side in one run.

Usage: python bench/a11y_speed.py [ROUNDS]. Prints one JSON object (ms, MB).
The machine is shared: run it when others are quiet, and say so if not.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from deskpilot.agent.checks import CheckContext, run_checks
from deskpilot.agent.desk.session import Session
from deskpilot.sandbox import Sandbox

FORM = str(Path(__file__).resolve().parent.parent / "tests" / "apps" / "gtk_form.py")


def _median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            parents[int(name)] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    found, grew = {pid}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return found


def _pss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def bus_cost(rounds: int) -> dict:
    starts: dict[bool, list[float]] = {True: [], False: []}
    for i in range(rounds):
        for on in ((True, False) if i % 2 else (False, True)):
            started = time.perf_counter()
            sb = Sandbox((800, 600), accessibility=on)
            starts[on].append((time.perf_counter() - started) * 1000)
            sb.close()
    with Session((800, 600), apps=[["/usr/bin/python3", FORM]]) as desk:
        desk.get_by_role("button", name="Save").wait_for(timeout=30)  # registered: the registry runs
        pss = _pss_mb(_descendants(desk.sandbox.a11y_bus.pid))
    on, off = statistics.median(starts[True]), statistics.median(starts[False])
    return {"start_ms_with_bus": round(on, 1), "start_ms_without": round(off, 1),
            "bus_start_ms": round(on - off, 1), "bus_pss_mb": pss}


def gtk_queries(rounds: int) -> dict:
    out: dict = {}
    with Session((1280, 800), apps=[["/usr/bin/python3", FORM]]) as desk:
        save = desk.get_by_role("button", name="Save")
        save.wait_for(timeout=30)
        out["locator_count_ms"] = _median_ms(save.count, rounds)
        out["snapshot_nodes"] = len(desk.a11y_snapshot().nodes)
        tree = _median_ms(lambda: _check(desk, True), rounds)
        ocr_rounds = max(3, rounds // 5)
        ocr = _median_ms(lambda: _check(desk, False, cold=True), ocr_rounds)
        again = _median_ms(lambda: _check(desk, False), rounds)
        out.update(text_visible_tree_ms=tree, text_visible_ocr_ms=ocr, ocr_rounds=ocr_rounds,
                   text_visible_ocr_same_screen_ms=again)
    return out


def _check(desk: Session, tree: bool, cold: bool = False) -> None:
    """``cold``: OCR forgets what it read (it would answer an unchanged screen from memory)."""
    if cold:
        from deskpilot.perception import ocr

        ocr.read_text(Image.new("RGB", (8, 8)), fresh=True)
    ctx = CheckContext(sandbox=desk if tree else None, screen=desk.screenshot)
    (result,) = run_checks([{"text_visible": "Total: 42"}], ctx)
    assert result.passed and result.evidence["via"] == ("a11y" if tree else "ocr"), result.line()


def calc_snapshot(rounds: int) -> dict:
    from openpyxl import Workbook

    from deskpilot.perception.a11y import A11yReader
    from deskpilot.sandbox.a11ybus import LIBREOFFICE_GTK3

    if not LIBREOFFICE_GTK3.exists():
        return {"calc": "skipped: libreoffice-gtk3 is not installed (LibreOffice publishes no tree without it)"}
    with tempfile.TemporaryDirectory() as folder:
        book = Workbook()
        for row in range(1, 41):
            for col in range(1, 11):
                book.active.cell(row=row, column=col, value=row * col)
        path = Path(folder) / "sheet.xlsx"
        book.save(path)
        with Session((1280, 800), apps=[f"localc {path}"], ready_timeout=120, office_gtk3=True) as desk:
            desk.get_by_role("cell", name="B2", exact=True).wait_for(timeout=120)
            fresh = A11yReader(desk.sandbox.a11y_address)  # remembers nothing yet: the first snapshot's cost
            first = _median_ms(lambda: fresh.snapshot(time_limit=5), 1)
            fresh.close()
            snap = desk.a11y_snapshot(time_limit=5)
            return {"calc_first_snapshot_ms": first,
                    "calc_snapshot_ms": _median_ms(lambda: desk.a11y_snapshot(time_limit=5), rounds),
                    "calc_nodes": len(snap.nodes), "calc_truncated": snap.truncated,
                    "calc_cell_read_ms": _median_ms(desk.get_by_role("cell", name="C3", exact=True).text, rounds)}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    result = {"load_before": os.getloadavg()[0]}
    result.update(bus_cost(max(3, rounds // 2)))
    result.update(gtk_queries(rounds))
    result.update(calc_snapshot(rounds))
    result["load_after"] = os.getloadavg()[0]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
