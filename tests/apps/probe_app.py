"""Tk probe app: logs every input event it receives as JSON lines on stdout.

Run with the system python (python3-tk) inside a sandbox:
``python3 probe_app.py [--title T] [--x X] [--y Y]``. It prints one
``{"ev": "ready", "widgets": {name: [root_x, root_y, w, h]}}`` line once
mapped, then one line per button press/release, motion (throttled, the last
position always logged), key press, focus change and content change. Event
lines carry root coordinates, so tests need not know the WM's decorations.
"""

import argparse
import json
import sys
import time
import tkinter as tk

MOTION_EVERY_S = 0.02


def emit(**fields):
    fields["t"] = round(time.monotonic(), 4)
    sys.stdout.write(json.dumps(fields, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class Probe:
    def __init__(self, root):
        self.root = root
        self.area = tk.Canvas(root, name="area", width=600, height=300, bg="white", highlightthickness=0)
        self.e1 = tk.Entry(root, name="e1", width=50)
        self.e2 = tk.Entry(root, name="e2", width=50)
        self.text = tk.Text(root, name="text", width=60, height=5)
        for widget in (self.area, self.e1, self.e2, self.text):
            widget.pack(padx=4, pady=4, anchor="w")
        for entry in (self.e1, self.e2):
            entry.bind("<Control-a>", self.select_all)
        self.text.bind("<Control-a>", self.select_all_text)
        self.area.bind("<Double-Button-1>", lambda e: emit(ev="double", w="area", x_root=e.x_root, y_root=e.y_root))
        self.area.bind("<Triple-Button-1>", lambda e: emit(ev="triple", w="area", x_root=e.x_root, y_root=e.y_root))
        self.last_motion = 0.0
        self.pending_motion = None
        self.contents = None
        self.bind_events()
        root.after(50, self.poll_contents)

    def bind_events(self):
        root = self.root
        root.bind_all("<ButtonPress>", lambda e: self.button("press", e), add="+")
        root.bind_all("<ButtonRelease>", lambda e: self.button("release", e), add="+")
        root.bind_all("<Motion>", self.motion, add="+")
        root.bind_all("<MouseWheel>", self.wheel, add="+")
        root.bind_all("<Shift-MouseWheel>", self.wheel, add="+")
        root.bind_all("<KeyPress>", self.key, add="+")
        root.bind_all("<FocusIn>", lambda e: self.focus("focus_in", e), add="+")
        root.bind_all("<FocusOut>", lambda e: self.focus("focus_out", e), add="+")

    def name(self, widget):
        return widget.winfo_name() if hasattr(widget, "winfo_name") else str(widget)

    def button(self, kind, e):
        self.flush_motion()
        emit(ev=kind, w=self.name(e.widget), button=e.num, state=e.state,
             x=e.x, y=e.y, x_root=e.x_root, y_root=e.y_root)

    def motion(self, e):
        self.pending_motion = dict(ev="motion", w=self.name(e.widget), x=e.x, y=e.y,
                                   x_root=e.x_root, y_root=e.y_root, state=e.state)
        now = time.monotonic()
        if now - self.last_motion >= MOTION_EVERY_S:
            self.flush_motion()
        else:
            self.root.after(int(MOTION_EVERY_S * 1000), self.flush_motion)

    def flush_motion(self):
        if self.pending_motion is not None:
            emit(**self.pending_motion)
            self.pending_motion = None
            self.last_motion = time.monotonic()

    def wheel(self, e):
        emit(ev="wheel", w=self.name(e.widget), delta=e.delta, state=e.state, x_root=e.x_root, y_root=e.y_root)

    def key(self, e):
        emit(ev="key", w=self.name(e.widget), keysym=e.keysym, char=e.char, state=e.state)

    def focus(self, kind, e):
        emit(ev=kind, w=self.name(e.widget))

    def select_all(self, e):
        emit(ev="select_all", w=self.name(e.widget), state=e.state)
        e.widget.select_range(0, "end")
        e.widget.icursor("end")
        return "break"

    def select_all_text(self, e):
        emit(ev="select_all", w=self.name(e.widget), state=e.state)
        e.widget.tag_add("sel", "1.0", "end-1c")
        return "break"

    def poll_contents(self):
        now = {"e1": self.e1.get(), "e2": self.e2.get(), "text": self.text.get("1.0", "end-1c")}
        if now != self.contents:
            self.contents = now
            emit(ev="content", **now)
        self.root.after(30, self.poll_contents)

    def geometry(self):
        widgets = {}
        for w in (self.root, self.area, self.e1, self.e2, self.text):
            widgets["root" if w is self.root else self.name(w)] = [
                w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]
        return widgets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--title", default="deskpilot-probe")
    parser.add_argument("--x", type=int, default=40)
    parser.add_argument("--y", type=int, default=40)
    args = parser.parse_args()
    root = tk.Tk()
    root.title(args.title)
    root.geometry(f"+{args.x}+{args.y}")
    probe = Probe(root)

    def ready():
        root.update_idletasks()
        emit(ev="ready", title=args.title, widgets=probe.geometry())

    root.wait_visibility(root)
    root.after(100, ready)
    root.mainloop()


if __name__ == "__main__":
    main()
