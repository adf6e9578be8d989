"""Worst-case parse time of a GLM-4.5V reply, by shape and size: is it linear?

For each hostile shape (the audit's 20 boxes x 20 unclosed calls, an unclosed
string, deep brackets, ...) the reply is built at 125 kB, 250 kB, 500 kB and
1 MB and parsed 3 times (best kept). Baseline, in the same run: one Python
loop over the characters of the same text (``for ch in text: pass``), so
"passes" says how many such plain passes a whole parse costs. Linear parsing keeps the
1 MB / 125 kB growth near 8 (quadratic would be near 64).

Exits 1 unless every 1 MB reply parses in under 1 s and grows at most 24x from
125 kB to 1 MB (8x is linear, 64x quadratic; the margin is for a shared machine).
Usage: python bench/parse_worst_case.py
"""

from __future__ import annotations

import sys
import time

from deskpilot.actions.parse import ParseError, parse_glm_reply

B, E = "<|begin_of_box|>", "<|end_of_box|>"
SIZES = (125_000, 250_000, 500_000, 990_000)
SHAPES = {
    "20 boxes x 20 unclosed calls": lambda n: (B + "left_click('" * 20 + E) * (n // 270),
    "unclosed calls": lambda n: "left_click('" * (n // 12),
    "one unclosed string": lambda n: "left_click('" + "a" * n,
    "unclosed JSON actions": lambda n: '{"action": "click", "box_2d": "' * (n // 32),
    "escapes": lambda n: "type(content='" + "\\n" * (n // 2),
    "deep brackets": lambda n: "left_click(" + "[" * n,
    "action labels": lambda n: "Action: left_click('x\n" * (n // 22),
    "memory markers": lambda n: "Memory: [\n" * (n // 10),
    "open think": lambda n: "<think>" + "left_click('" * (n // 12),
    "quotes then blanks": lambda n: "left_click('" + ("'" + " " * 500 + "x") * (n // 502),
    "bare terminal words": lambda n: "DONE? WAIT! fail.\n" * (n // 18),
    "unclosed box before Memory": lambda n: B + "type(content='" + "it's " * (n // 5) + "\nMemory:\n[]",
}


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _one_pass(text: str) -> None:
    for _ in text:
        pass


def _parse(text: str) -> None:
    try:
        parse_glm_reply(text, width=1920, height=1080)
    except ParseError:
        pass


def main() -> int:
    ok = True
    print(f"{'shape (ms per parse)':30s}" + "".join(f"{s // 1000:>8d}kB" for s in SIZES) + "  growth  passes@1MB")
    for name, build in SHAPES.items():
        times = []
        for size in SIZES:
            text = build(size)
            times.append(_best(lambda: _parse(text)))
        text = build(SIZES[-1])
        baseline = _best(lambda: _one_pass(text))
        growth = times[-1] / max(times[0], 1e-6)
        ok &= times[-1] < 1.0 and growth <= 24
        print(f"{name:30s}" + "".join(f"{t * 1000:10.1f}" for t in times)
              + f"  {growth:5.1f}x  {times[-1] / max(baseline, 1e-6):8.1f}")
    print("gate:", "PASS" if ok else "FAIL", "(1 MB under 1 s, growth 125 kB -> 1 MB at most 24x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
