"""Tk app for settle tests: reacts to a click LATE, and can animate or blink.

``python3 settle_app.py --delay-ms 300 [--animate]``: a window with a white
canvas and a focused entry (its caret blinks, Tk's default 600/300 ms). A
click on the canvas paints it red (white again on the next click)
``--delay-ms`` after the press, and nothing before (with ``--second-paint-ms
M``, a green band follows M ms after that; with ``--press-mark``, a small
black square appears under the pointer AT ONCE, as a pressed look); ``--animate`` moves a 120x100 block every 8 ms forever. Prints one
``{"ev": "ready", "canvas": [x, y, w, h], "entry": [...]}`` line (root
coordinates), then ``{"ev": "painted"}`` when the late reaction is drawn, and
``{"ev": "canvas"}`` for every press on the canvas.
``--delay-ms -1``: no late reaction at all.

Popups (override-redirect toplevels, as drop-down lists and menus are):
- ``--popup-list CLOSE_MS``: a "choose" button opens a drop-down list over the
  canvas (``{"ev": "popup", "box": [...], "item": [x, y]}`` once it shows); a
  press on an item highlights it AT ONCE and closes the list CLOSE_MS later,
  the way LibreOffice's lists do (``{"ev": "chose"}``; ``{"ev": "list"}`` for
  every press the list gets);
- ``--late-popup MS``: a press on the canvas creates a popup window at once
  and shows it MS later (``{"ev": "popup", ...}``).
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
    ap.add_argument("--popup-list", type=int, default=None, metavar="CLOSE_MS", help="a drop-down list closing this late")
    ap.add_argument("--late-popup", type=int, default=None, metavar="MS", help="a press maps a popup this much later")
    ap.add_argument("--at", default="+60+60", help="where the window goes (Tk geometry, +X+Y)")
    args = ap.parse_args()
    root = tk.Tk()
    root.title("settle-app")
    root.geometry(args.at)
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
        emit(ev="canvas")
        if args.press_mark:
            canvas.delete("mark")
            canvas.create_rectangle(event.x - 6, event.y - 6, event.x + 6, event.y + 6, fill="black", tags="mark")
            root.update_idletasks()
        if args.late_popup is not None:
            late_popup(event)
        if args.delay_ms >= 0:
            root.after(args.delay_ms, paint)

    def popup_window(x, y):
        """An override-redirect toplevel (created now, so its X window exists before it is shown)."""
        top = tk.Toplevel(root)
        top.withdraw()
        top.overrideredirect(True)
        top.geometry(f"+{x}+{y}")
        top.update_idletasks()
        return top

    def shown(top, **fields):
        """Report the popup once it is on the screen and drawn."""
        top.wait_visibility()
        top.update_idletasks()
        box = [top.winfo_rootx(), top.winfo_rooty(), top.winfo_width(), top.winfo_height()]
        emit(ev="popup", box=box, **{k: f() for k, f in fields.items()})

    def late_popup(event):
        top = popup_window(event.x_root + 30, event.y_root + 20)
        tk.Label(top, text="late popup", bg="yellow", width=20, height=6).pack()
        root.after(args.late_popup, lambda: (top.deiconify(), shown(top)))

    lists = []

    def open_list():
        while lists:  # the button toggles, as a combo box's does: a list still open closes first
            lists.pop().destroy()
        top = popup_window(canvas.winfo_rootx() + 40, canvas.winfo_rooty() + 10)
        lists.append(top)
        items = tk.Listbox(top, height=6, width=18, bg="#ffffcc", selectbackground="#3366cc", exportselection=False,
                           activestyle="none", highlightthickness=0)
        for n in range(6):
            items.insert("end", f"item {n}")
        items.pack()

        def pick(event):
            emit(ev="list")
            index = items.nearest(event.y)
            items.selection_clear(0, "end")
            items.selection_set(index)  # the highlight, drawn at once
            root.update_idletasks()
            root.after(args.popup_list, lambda: close(top, index))

        def close(top, index):
            if top in lists:
                lists.remove(top)
                top.destroy()
                chooser.configure(text=f"item {index}")
                emit(ev="chose")

        items.bind("<ButtonPress-1>", pick)
        top.deiconify()
        row = lambda: items.bbox(3)  # noqa: E731  (x, y, w, h of item 3, known once shown)
        shown(top, item=lambda: [top.winfo_rootx() + top.winfo_width() - 15, top.winfo_rooty() + row()[1] + row()[3] // 2])

    chooser = tk.Button(root, text="choose", command=open_list)
    if args.popup_list is not None:
        chooser.pack()

    canvas.bind("<ButtonPress-1>", press)

    def move(x=[0]):
        x[0] = (x[0] + 7) % 280
        canvas.coords(square, x[0], 130, x[0] + 120, 230)
        root.after(8, move)

    def ready():
        entry.focus_force()
        box = lambda w: [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]
        emit(ev="ready", canvas=box(canvas), entry=box(entry), **({"chooser": box(chooser)} if args.popup_list is not None else {}))
        if args.animate:
            move()

    root.after(300, ready)
    root.mainloop()


main()
