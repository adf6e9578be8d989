"""Cost of building one step's prompt, per dialect, with the trained action space.

The action space (### sections with schema blocks generated from pydantic
models) is the same every step, so each dialect renders it once. Baseline, in
the same run: rendering it again for every request (what a naive build does).
History: 10 earlier steps with 1920x1080 screenshots (4 shown at 50 %, already
shrunk once and cached, as in a run). Prints ms per build (median of 200).

Usage: python bench/prompt_build.py
"""

from __future__ import annotations

import statistics
import time

from PIL import Image

from deskpilot.agent.dialects import DIALECT_NAMES, HistoryEntry, make_dialect
from deskpilot.agent.dialects.actionspace import render_action_space
from deskpilot.agent.dialects.render import prompt_text
from deskpilot.perception.observation import Observation


def _median_ms(fn, runs: int = 200) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    obs = Observation(image=Image.new("RGB", (1920, 1080), (30, 30, 30)), timestamp=0.0)
    shot = Image.new("RGB", (1920, 1080), (60, 60, 60))
    history = [HistoryEntry(thought=f"step {i}", action_text=f"left_click(start_box='[{i},{i}]')",
                            screenshot=shot if i >= 6 else None) for i in range(10)]
    print(f"{'dialect':10} {'chars':>6} {'cached ms':>10} {'baseline ms':>12} {'speed-up':>9}")
    for name in DIALECT_NAMES:
        dialect = make_dialect(name)
        dialect.build_request("Open the settings", obs, history, None)  # warm the shrink cache

        def cached():
            dialect.build_request("Open the settings", obs, history, None)

        def baseline():
            dialect.action_space = render_action_space(dialect.calls)
            dialect.build_request("Open the settings", obs, history, None)

        fast, slow = _median_ms(cached), _median_ms(baseline)
        chars = len(prompt_text(dialect.build_request("Open the settings", obs, history, None).messages))
        print(f"{name:10} {chars:6d} {fast:10.2f} {slow:12.2f} {slow / fast:8.1f}x")


if __name__ == "__main__":
    main()
