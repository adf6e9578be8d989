"""The peers' pyautogui path, run in its own process (pyautogui binds $DISPLAY at import).

Usage: python _pyautogui_peer.py STEPS X Y TEXT. Defaults are left as peers ship
them (PAUSE 0.1 s, screenshot through scrot). Prints one JSON list of per-step ms.

``ui_test`` is the small mousepad test of bench/ui_test_speed.py written the way
peers script desktops: pyautogui for input, and for every text assertion a loop of
screenshot + RapidOCR (its default settings, a fresh full read each time) until
the text shows; the saved title is asked of the window manager (xdotool).
Import this module only once $DISPLAY names the desk.
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


OCR_READS = 0
_ocr = None


def ocr_engine():
    global _ocr
    if _ocr is None:
        from rapidocr import RapidOCR

        _ocr = RapidOCR(params={"Global.log_level": "critical"})
    return _ocr


def screen_texts(region=None) -> list[str]:
    """Every text RapidOCR reads on a fresh screenshot (of ``region``: left, top, width, height)."""
    import numpy as np

    global OCR_READS
    OCR_READS += 1
    found = ocr_engine()(np.asarray(pyautogui.screenshot(region=region).convert("RGB")))
    return [str(t) for t in (found.txts or ())]


def wait_for(pred, what: str, timeout: float = 60.0, region=None) -> None:
    """Screenshot + OCR again and again until ``pred`` holds for the texts read (a peer's wait_for_text)."""
    deadline = time.monotonic() + timeout
    while True:
        texts = screen_texts(region)
        if pred(texts):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s; read: {texts[:12]}")


def _holds(text: str):
    needle = text.replace(" ", "").lower()
    return lambda texts: any(needle in t.replace(" ", "").lower() for t in texts)


def window_title() -> str:
    """The focused window's title the way peers ask for it (xdotool; pyautogui has no window API on Linux)."""
    import subprocess

    done = subprocess.run(["xdotool", "getactivewindow", "getwindowname"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def wait_saved(timeout: float = 60.0) -> None:
    """Until the title names the file without the modified mark (a peer's loop over xdotool)."""
    deadline = time.monotonic() + timeout
    while True:
        title = window_title()
        if "notes.txt" in title and not title.startswith("*"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the title still reads {title!r} after {timeout} s")
        time.sleep(0.1)


def ui_test(timer, point: tuple[int, int], lines: list[str]) -> None:
    """The bench's mousepad test; ``timer.assertion`` times each of the 5 assertions."""
    pyautogui.FAILSAFE = False
    ocr_engine()
    timer.assertion(lambda: wait_for(_holds("File"), "the File menu"))
    pyautogui.click(*point)
    for n, line in enumerate(lines):
        if n:
            pyautogui.press("enter")
        pyautogui.write(line)
        if n in (0, 1, 3):
            timer.assertion(lambda line=line: wait_for(_holds(line), repr(line)))
    pyautogui.hotkey("ctrl", "home")
    pyautogui.hotkey("ctrl", "s")
    # the title by OCR was tried and dropped: on the whole screen RapidOCR lost the long title in 1 of ~8
    # runs (the same on every retry of a still screen), and a title-bar crop took 5 s (its defaults scale
    # a crop's short side up to 736 px); peers ask the window manager instead
    timer.assertion(wait_saved)


if __name__ == "__main__":
    main()
