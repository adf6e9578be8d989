"""Incremental OCR vs reading every frame from scratch, on a real 1920x1080 sandbox screen.

A maximised xterm shows 24 known lines; the script reads (CPU and wall time, median of N rounds):

- cold: the frame from scratch (``read_text(frame, fresh=True)``: detection, every line recognised);
- same: the same frame again (an unchanged screen: a comparison, no OCR);
- one line: a frame where one line changed (text typed at the prompt) after the previous one
  (detection over the frame, only lines with new pixels recognised);
- region: a 600x200 region of the unchanged frame (lines whose middle lies in it);

and, as the baseline in the same run, the way reads went before band-by-band detection: the detector
given the whole frame at once, then every box recognised (``whole frame``), on the xterm frame and on
a sparse one (five short lines in a maximised 1920x1080 mousepad): CPU, and how many known lines each
way finds.

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


NOTES = ["Shopping list", "- apples 3", "- bread 1", "- Milk, semi-skimmed: 2 litres", "Total: 14.20 EUR"]


def sparse_screen(folder: Path):
    """A maximised mousepad showing five short lines: most of the 1080p frame is empty."""
    from deskpilot.agent.desk.session import AppSpec, Session, SessionSpec
    from deskpilot.perception import ocr

    notes = folder / "notes.txt"
    notes.write_text("\n".join(NOTES) + "\n", encoding="utf-8")
    with Session(spec=SessionSpec(size=(1920, 1080), shares=[str(folder)],
                                  apps=[AppSpec(argv=["mousepad", str(notes)])])) as desk:
        ocr.wait_for_text(desk, "Total", timeout=60)
        desk.settle(3)
        return desk.screenshot()


def whole_frame(frame):
    """The former read: the detector on the whole frame (padded to 32), each box recognised alone."""
    import numpy as np
    from rapidocr.ch_ppocr_rec import TextRecInput

    from deskpilot.perception import ocr

    engine = ocr.engine()
    pixels = np.asarray(frame.convert("RGB"))
    h, w = pixels.shape[:2]
    padded = np.pad(pixels, ((0, -h % 32), (0, -w % 32), (0, 0)), mode="edge")
    quads = engine._load_det_model()(padded).boxes
    quads = [] if quads is None else list(quads)
    lines = []
    for quad, crop in zip(quads, engine.crop_text_regions(padded, quads)):
        out = engine.text_rec(TextRecInput(img=[crop]))
        if str(out.txts[0]).strip() and float(out.scores[0]) >= engine.text_score:
            box = (int(quad[:, 0].min()), int(quad[:, 1].min()), int(quad[:, 0].max()), int(quad[:, 1].max()))
            lines.append(ocr.TextBox(text=str(out.txts[0]), box=box, score=float(out.scores[0])))
    return lines


def known(lines, wanted) -> int:
    from deskpilot.perception import ocr

    return sum(1 for text in wanted if [t.text for t in ocr.match(lines, text)] == [text])


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
    sparse = sparse_screen(Path(tempfile.mkdtemp()))
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
    print(f"load average {os.getloadavg()[0]:.1f}; {known(final, LINES)}/24 known lines read exactly\n")
    print("| read | path | lines | recognised | CPU ms (median) | wall ms (median) |")
    print("|---|---|---|---|---|---|")
    for name, samples in rows.items():
        cpu = statistics.median(s[0] for s in samples)
        wall = statistics.median(s[1] for s in samples)
        print(f"| {name} | {kinds[name][0]} | {kinds[name][1]} | {kinds[name][2]} | {cpu:.0f} | {wall:.0f} |")
    print("\n| screen | way | CPU ms (median) | known lines found |")
    print("|---|---|---|---|")
    for screen, frame, wanted in (("24-line xterm", first, LINES), ("sparse mousepad", sparse, NOTES)):
        for way, fn in (("whole frame (before)", lambda: whole_frame(frame)),
                        ("band by band, cold", lambda: ocr.read_text(frame, fresh=True))):
            samples = [timed(fn) for _ in range(args.rounds)]
            found = known(samples[-1][2], wanted)
            print(f"| {screen} | {way} | {statistics.median(s[0] for s in samples):.0f} | {found}/{len(wanted)} |")


if __name__ == "__main__":
    main()
