"""OCR time per frame on real sandbox screens: deskpilot.perception.ocr vs. RapidOCR's defaults.

Two sandboxes (1280x800 and 1920x1080) show a maximised xterm (DejaVu Sans Mono 12) with 24 known lines of
text. For each, the script times:

- deskpilot: ``ocr.read_text(frame)`` (engine loaded once per process, angle
  classifier off), median of N frames after one warm-up;
- baseline: ``RapidOCR()(frame)`` with the library's defaults (classifier on),
  same frames, same process;
- a fresh engine per call (what a check that built its own engine would pay):
  load + one read, once.

It also counts how many of the known lines were read exactly. Usage:
``python bench/ocr_per_frame.py [--frames 5]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

LINES = [f"Line {n:02d}: invoice {1000 + n * 37} total {n * 12.5:.2f} EUR" for n in range(1, 25)]


def frames_of(size, folder: Path, count: int):
    from deskpilot.agent.desk.screens import settle_blocking
    from deskpilot.agent.desk.session import AppSpec, SessionSpec, open_sandbox, wait_until_ready
    from deskpilot.perception import Capturer

    text = folder / "lines.txt"
    text.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    show = f'cat "{text}"; exec sleep 600'
    argv = ["xterm", "-maximized", "-fa", "DejaVu Sans Mono", "-fs", "12", "-e", "/bin/sh", "-c", show]
    spec = SessionSpec(size=size, shares=[str(folder)], apps=[AppSpec(argv=argv)])
    sb, apps = open_sandbox(spec)
    with sb:
        with Capturer(sb) as capturer:
            wait_until_ready(sb, capturer, handles=apps)
            settle_blocking(capturer.grab, cap=3)
            return [capturer.grab().image for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args()
    from rapidocr import RapidOCR

    from deskpilot.perception import ocr

    rows = []
    load_start = os.getloadavg()[0]
    load_started = time.perf_counter()
    ocr.engine()
    load_ms = (time.perf_counter() - load_started) * 1000
    baseline_engine = RapidOCR(params={"Global.log_level": "critical"})
    with tempfile.TemporaryDirectory() as tmp:
        for size in ((1280, 800), (1920, 1080)):
            folder = Path(tmp) / f"{size[0]}x{size[1]}"
            folder.mkdir()
            frames = frames_of(size, folder, args.frames + 1)
            ocr.read_text(frames[0])  # warm-up
            ours, base, ours_cpu, base_cpu, found = [], [], [], [], 0
            for frame in frames[1:]:  # interleaved, so both see the same machine load
                t, c = time.perf_counter(), time.process_time()
                lines = ocr.read_text(frame)
                ours.append((time.perf_counter() - t) * 1000)
                ours_cpu.append((time.process_time() - c) * 1000)
                t, c = time.perf_counter(), time.process_time()
                baseline_engine(np.asarray(frame))
                base.append((time.perf_counter() - t) * 1000)
                base_cpu.append((time.process_time() - c) * 1000)
                found = sum(1 for want in LINES if ocr.match(lines, want))
            t = time.perf_counter()
            RapidOCR(params={"Global.log_level": "critical"})(np.asarray(frames[1]))
            fresh = (time.perf_counter() - t) * 1000
            rows.append((size, statistics.median(ours), statistics.median(base), fresh, found,
                         statistics.median(ours_cpu), statistics.median(base_cpu)))
    print(f"machine: {os.cpu_count()} cores, load average {load_start:.2f} (start) / "
          f"{os.getloadavg()[0]:.2f} (end); engine construction {load_ms:.0f} ms\n")
    print("| screen | deskpilot read_text: wall / CPU ms | RapidOCR defaults: wall / CPU ms | fresh engine + read, wall ms | known lines read |")
    print("|---|---|---|---|---|")
    for (w, h), o, b, f, n, oc, bc in rows:
        print(f"| {w}x{h} | {o:.0f} / {oc:.0f} | {b:.0f} / {bc:.0f} (CPU {bc / oc:.2f}x) | {f:.0f} | {n}/{len(LINES)} |")


if __name__ == "__main__":
    main()
