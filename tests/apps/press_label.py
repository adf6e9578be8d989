"""Tk app for the recorder's click-frame test: a label that changes the moment it is pressed.

``python3 press_label.py``: one window showing "Open the box"; a left press on it (not the
release) makes it read "Box is open now". A recorder that grabs the screen late sees the new
text under the click; one that grabs it at the press sees the old. Prints ``{"ev": "ready"}``
once drawn and ``{"ev": "pressed"}`` at the press.
"""

import json
import sys
import tkinter as tk


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    root = tk.Tk()
    root.title("press-label")
    root.geometry("600x240+40+40")
    label = tk.Label(root, text="Open the box", font=("DejaVu Sans", 24), bg="white")
    label.pack(expand=True, fill="both")

    def pressed(_event):
        label.configure(text="Box is open now", bg="#ffe680")
        emit(ev="pressed")

    label.bind("<ButtonPress-1>", pressed)
    root.after_idle(lambda: emit(ev="ready"))
    root.mainloop()


if __name__ == "__main__":
    main()
