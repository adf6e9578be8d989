"""The peers' pyautogui path, run in its own process (pyautogui binds $DISPLAY at import).

Usage: python _pyautogui_peer.py STEPS X Y TEXT. Defaults are left as peers ship
them (PAUSE 0.1 s, screenshot through scrot). Prints one JSON list of per-step ms.
"""

import json
import sys
import time

import pyautogui


def main() -> None:
    steps, x, y, text = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    pyautogui.FAILSAFE = False  # the bench clicks near nothing dangerous; keep default PAUSE
    times = []
    for _ in range(steps + 1):  # the first step warms up and is dropped
        start = time.perf_counter()
        pyautogui.screenshot()
        pyautogui.click(x, y)
        pyautogui.write(text)
        times.append((time.perf_counter() - start) * 1000)
    print(json.dumps(times[1:]))


if __name__ == "__main__":
    main()
