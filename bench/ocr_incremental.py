"""Incremental OCR vs reading every frame from scratch, on a real 1920x1080 sandbox screen.

A maximised xterm shows 24 known lines; the script reads (CPU and wall time, median of N rounds):

- cold: the frame from scratch (``read_text(frame, fresh=True)``: detection, every line recognised);
- same: the same frame again (an unchanged screen: a comparison, no OCR);
- one line: a frame where one line changed (text typed at the prompt) after the previous one
  (detection over the frame, only lines with new pixels recognised);
- region: a 600x200 region of the unchanged frame (lines whose middle lies in it).

Usage: ``python bench/ocr_incremental.py [--rounds 3]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

LINES = [f"Line {n:02d}: invoice {1000 + n * 37} total {n * 12.5:.2f} EUR" for n in range(1, 25)]


def screens(folder: Path):
    """Two frames of one xterm: the 24 lines, then the same with `echo done` typed at the prompt."""
    from deskpilot.agent.desk.session import AppSpec, Session, SessionSpec

    text = folder / "lines.txt"
    text.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    argv = ["xterm", "-maximized", "-fa", "DejaVu Sans Mono", "-fs", "12", "-e", "/bin/sh", "-c",
            f'cat "{text}"; exec /bin/sh']
    with Session(spec=SessionSpec(size=(1920, 1080), shares=[str(folder)], apps=[AppSpec(argv=argv)])) as desk:
        desk.settle(3)
        first = desk.screenshot()
        desk.type("echo done")
        desk.settle(3)
        return first, desk.screenshot()


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from deskpilot.perception import ocr

    first, second = screens(Path(tempfile.mkdtemp()))
    ocr.read_text(first, fresh=True)  # engine loaded, warm
    rows: dict[str, list[tuple[float, float]]] = {"cold": [], "same": [], "one line": [], "region": []}
    kinds = {}
    for _ in range(args.rounds):
        for name, fn in (("cold", lambda: ocr.read_text(first, fresh=True)),  # then "one line" follows "same"
                         ("same", lambda: ocr.read_text(first)),
                         ("one line", lambda: ocr.read_text(second)),
                         ("region", lambda: ocr.read_text(first, region=(0, 0, 600, 200)))):
            cpu, wall, lines = timed(fn)
            rows[name].append((cpu, wall))
            kinds[name] = (ocr.last_kind, len(lines), ocr.last_recognised)
    final = ocr.read_text(second, fresh=True)
    known = sum(1 for line in LINES if [t.text for t in ocr.match(final, line)] == [line])
    print(f"load average {os.getloadavg()[0]:.1f}; {known}/24 known lines read exactly\n")
    print("| read | path | lines | recognised | CPU ms (median) | wall ms (median) |")
    print("|---|---|---|---|---|---|")
    for name, samples in rows.items():
        cpu = statistics.median(s[0] for s in samples)
        wall = statistics.median(s[1] for s in samples)
        print(f"| {name} | {kinds[name][0]} | {kinds[name][1]} | {kinds[name][2]} | {cpu:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
