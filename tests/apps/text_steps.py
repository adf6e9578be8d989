"""Tk app for the OCR exactness tests: a page of text in three fonts that changes one step per key.

``python3 text_steps.py --size 1900x1000``: a Text widget (no caret, nothing blinks) holding 80
numbered lines in DejaVu Sans 10, DejaVu Sans Mono 12 and DejaVu Serif 16, and a status line. Each
press of F5 applies the next scripted change, the kinds an incremental reader must get right:

1. one line edited in place;
2. a line inserted near the top (every line below moves down);
3. a dialog appears over the text;
4. the dialog closes;
5. two lines far apart change at once (two bands);
6. the text scrolls by six lines;
7. only the status line changes.

Prints ``{"ev": "ready"}`` once drawn and ``{"ev": "step", "n": N}`` once step N is drawn.
"""

import argparse
import json
import sys
import tkinter as tk

FONTS = (("DejaVu Sans", 10), ("DejaVu Sans Mono", 12), ("DejaVu Serif", 16))


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def line(n):
    return f"Row {n:02d}: order {4200 + n * 17} shipped to depot {chr(65 + n % 26)} on day {n % 28 + 1}\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1900x1000")
    args = ap.parse_args()
    root = tk.Tk()
    root.title("text-steps")
    root.geometry(f"{args.size}+0+0")
    text = tk.Text(root, insertwidth=0, borderwidth=0, highlightthickness=0, wrap="none", padx=20, pady=10)
    for n, font in enumerate(FONTS):
        text.tag_configure(f"f{n}", font=font)
    for n in range(1, 81):
        text.insert("end", line(n), f"f{n % 3}")
    status = tk.Label(root, text="Status: 80 rows loaded", font=("DejaVu Sans", 11), anchor="w")
    status.pack(side="bottom", fill="x", padx=20, pady=4)
    text.pack(fill="both", expand=True)
    text.configure(state="disabled")
    dialog = {}

    def edit(index, new, tag):
        text.configure(state="normal")
        text.delete(f"{index}.0", f"{index}.end+1c")
        text.insert(f"{index}.0", new, tag)
        text.configure(state="disabled")

    def open_dialog():
        top = tk.Toplevel(root)
        top.title("Confirm")
        top.geometry("+700+300")
        tk.Label(top, text="Delete the 3 selected orders?", font=("DejaVu Sans", 12)).pack(padx=30, pady=20)
        row = tk.Frame(top)
        row.pack(pady=10)
        tk.Button(row, text="Delete", font=("DejaVu Sans", 11)).pack(side="left", padx=10)
        tk.Button(row, text="Keep them", font=("DejaVu Sans", 11)).pack(side="left", padx=10)
        dialog["top"] = top

    def insert_row():
        text.configure(state="normal")
        text.insert("3.0", "Inserted: a new order 9999 waits for approval\n", "f1")
        text.configure(state="disabled")

    steps = [
        lambda: edit(5, "Row 05: order 4285 RETURNED by the customer\n", "f2"),
        insert_row,
        open_dialog,
        lambda: dialog.pop("top").destroy(),
        lambda: (edit(2, "Row 02: order 4234 on hold\n", "f2"), edit(30, "Row 29: order 4693 cancelled\n", "f2")),
        lambda: text.yview_scroll(6, "units"),
        lambda: status.configure(text="Status: 81 rows, 1 returned, 1 on hold"),
    ]
    done = [0]

    def step(_event):
        if done[0] >= len(steps):
            return
        steps[done[0]]()
        done[0] += 1
        root.after_idle(lambda n=done[0]: (root.update_idletasks(), emit(ev="step", n=n)))

    root.bind_all("<F5>", step)
    root.after_idle(lambda: (root.update_idletasks(), emit(ev="ready")))
    root.mainloop()


if __name__ == "__main__":
    main()
