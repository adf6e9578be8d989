"""The peers' pyautogui path, run in its own process (pyautogui binds $DISPLAY at import).

Usage: python _pyautogui_peer.py STEPS X Y TEXT. Defaults are left as peers ship
them (PAUSE 0.1 s, screenshot through scrot). Prints one JSON list of per-step ms.

``ui_test`` is the small mousepad test of bench/ui_test_speed.py written the way
peers script desktops: pyautogui for input, and for every assertion a loop of
screenshot + RapidOCR (its default settings, a fresh full read each time) until
the text shows. Import this module only once $DISPLAY names the desk.
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


def screen_texts() -> list[str]:
    """Every text RapidOCR reads on a fresh screenshot."""
    import numpy as np

    global OCR_READS
    OCR_READS += 1
    found = ocr_engine()(np.asarray(pyautogui.screenshot().convert("RGB")))
    return [str(t) for t in (found.txts or ())]


def wait_for(pred, what: str, timeout: float = 60.0) -> None:
    """Screenshot + OCR again and again until ``pred`` holds for the texts read (a peer's wait_for_text)."""
    deadline = time.monotonic() + timeout
    while True:
        texts = screen_texts()
        if pred(texts):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s; read: {texts[:12]}")


def _holds(text: str):
    needle = text.replace(" ", "").lower()
    return lambda texts: any(needle in t.replace(" ", "").lower() for t in texts)


def _saved(texts: list[str]) -> bool:
    """The title shows (OCR reads a long centred title in pieces) and nothing read starts with the modified mark."""
    return any("Mousepad" in t for t in texts) and not any(t.lstrip().startswith("*") for t in texts)


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
    timer.assertion(lambda: wait_for(_saved, "the saved title"))


if __name__ == "__main__":
    main()
