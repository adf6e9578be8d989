"""Tk app for settle tests: reacts to a click LATE, and can animate or blink.

``python3 settle_app.py --delay-ms 300 [--animate]``: a window with a white
canvas and a focused entry (its caret blinks, Tk's default 600/300 ms). A
click on the canvas paints it red (white again on the next click)
``--delay-ms`` after the press, and nothing before (with ``--second-paint-ms
M``, a green band follows M ms after that; with ``--press-mark``, a small
black square appears under the pointer AT ONCE, as a pressed look); ``--animate`` moves a 120x100 block every 8 ms forever. Prints one
``{"ev": "ready", "canvas": [x, y, w, h], "entry": [...]}`` line (root
coordinates), then ``{"ev": "painted"}`` when the late reaction is drawn.
"""

import argparse
import json
import sys
import tkinter as tk


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=int, default=300)
    ap.add_argument("--animate", action="store_true")
    ap.add_argument("--second-paint-ms", type=int, default=0, help="after the reaction, paint a band again this much later")
    ap.add_argument("--press-mark", action="store_true", help="a small square under the pointer at once on a press")
    args = ap.parse_args()
    root = tk.Tk()
    root.title("settle-app")
    root.geometry("+60+60")
    canvas = tk.Canvas(root, width=400, height=240, bg="white", highlightthickness=0)
    canvas.pack()
    entry = tk.Entry(root, width=30)
    entry.pack(pady=6)
    square = canvas.create_rectangle(0, 0, 120, 100, fill="blue", outline="") if args.animate else None

    band = []

    def paint():
        canvas.configure(bg="white" if canvas.cget("bg") == "red" else "red")
        for item in band:
            canvas.delete(item)
        band.clear()
        root.update_idletasks()
        emit(ev="painted", bg=canvas.cget("bg"))
        if args.second_paint_ms:
            root.after(args.second_paint_ms, paint_band)

    def paint_band():  # a second burst of the same reaction, a while later (as GTK dialogs draw)
        band.append(canvas.create_rectangle(0, 60, 400, 160, fill="green", outline=""))
        root.update_idletasks()

    def press(event):
        if args.press_mark:
            canvas.delete("mark")
            canvas.create_rectangle(event.x - 6, event.y - 6, event.x + 6, event.y + 6, fill="black", tags="mark")
            root.update_idletasks()
        root.after(args.delay_ms, paint)

    canvas.bind("<ButtonPress-1>", press)

    def move(x=[0]):
        x[0] = (x[0] + 7) % 280
        canvas.coords(square, x[0], 130, x[0] + 120, 230)
        root.after(8, move)

    def ready():
        entry.focus_force()
        box = lambda w: [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]
        emit(ev="ready", canvas=box(canvas), entry=box(entry))
        if args.animate:
            move()

    root.after(300, ready)
    root.mainloop()


main()
