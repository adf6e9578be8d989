"""Tk app for the text-wait tests: a static window whose second label changes LATE.

``python3 late_text.py --delay-ms 1500``: a window with the line "Status board" and
"Waiting for the report"; ``--delay-ms`` after the first key press, the second line becomes
"Report ready" (a key starts the clock, so a slow desk start cannot eat the delay). Nothing
blinks (no focused entry), so the screen is still between the two. Prints ``{"ev": "ready"}``
once drawn, ``{"ev": "armed", "t": T}`` on the key and ``{"ev": "shown", "t": T}`` once the new
text is drawn (``time.monotonic()``: the same clock as the test's).
"""

import argparse
import json
import sys
import time
import tkinter as tk


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=int, default=1500)
    args = ap.parse_args()
    root = tk.Tk()
    root.title("late-text")
    root.geometry("+40+40")
    tk.Label(root, text="Status board", font=("DejaVu Sans", 20)).pack(padx=40, pady=10)
    status = tk.Label(root, text="Waiting for the report", font=("DejaVu Sans", 20))
    status.pack(padx=40, pady=10)

    def show():
        status.configure(text="Report ready")
        root.update_idletasks()
        emit(ev="shown", t=time.monotonic())

    def arm(_event):
        if not armed:
            armed.append(True)
            emit(ev="armed", t=time.monotonic())
            root.after(args.delay_ms, show)

    def ready():
        root.update_idletasks()
        emit(ev="ready")

    armed = []
    root.bind_all("<Key>", arm)

    root.after(200, ready)
    root.mainloop()


if __name__ == "__main__":
    main()
