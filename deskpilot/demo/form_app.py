"""A small full-screen Tk form: the bundled app the demo and the tests drive.

It runs inside the sandbox with the system Python (standard library only).
Widgets sit at fixed fractions of the screen, so a model's thousandths for
them are the same on every screen size. Every event is logged as a JSON line
on stdout (flushed), so tests can check what reached the app.
"""

import argparse
import json
import sys
import tkinter as tk

LAYOUTS = {
    # widget: (relx, rely) of its centre
    "standard": {"name": (0.50, 0.30), "email": (0.50, 0.42), "save": (0.50, 0.58), "bg": "#eef2f7"},
    "changed": {"name": (0.50, 0.62), "email": (0.50, 0.30), "save": (0.20, 0.85), "bg": "#3b2f2f"},
    # the standard form, until a name is typed: then the email row moves down (a change mid-run)
    "late": {"name": (0.50, 0.30), "email": (0.50, 0.42), "save": (0.50, 0.58), "bg": "#eef2f7",
             "email_after_name": (0.50, 0.48)},
}


def log(event, **fields):
    sys.stdout.write(json.dumps(dict(event=event, **fields), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--save-to", required=True, help="where Save writes the form as JSON")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="standard")
    args = parser.parse_args()
    layout = LAYOUTS[args.layout]

    root = tk.Tk(className="deskpilot-demo")
    root.title("deskpilot demo form")
    width, height = root.winfo_screenwidth(), root.winfo_screenheight()
    root.geometry(f"{width}x{height}+0+0")
    root.attributes("-fullscreen", True)
    root.configure(bg=layout["bg"])
    px = max(10, height // 45)
    font = ("DejaVu Sans", -px)

    tk.Label(root, text="Contact form", font=("DejaVu Sans", -int(px * 1.6), "bold"), bg=layout["bg"],
             fg="#333333").place(relx=0.5, rely=0.12, anchor="center")
    entries, labels = {}, {}
    for key, label in (("name", "Name"), ("email", "Email")):
        relx, rely = layout[key]
        labels[key] = tk.Label(root, text=label, font=font, bg=layout["bg"], fg="#333333")
        labels[key].place(relx=relx - 0.19, rely=rely, anchor="e")
        entry = tk.Entry(root, font=font, width=1)
        entry.place(relx=relx, rely=rely, anchor="center", relwidth=0.36)
        entry.bind("<FocusIn>", lambda e, k=key: log("focus", field=k))
        entry.bind("<KeyRelease>", lambda e, k=key, w=entry: log("text", field=k, value=w.get()))
        entries[key] = entry

    def move_email(_event=None):
        relx, rely = layout["email_after_name"]
        labels["email"].place(relx=relx - 0.19, rely=rely, anchor="e")
        entries["email"].place(relx=relx, rely=rely, anchor="center", relwidth=0.36)

    if "email_after_name" in layout:
        entries["name"].bind("<KeyRelease>", move_email, add="+")

    status = tk.Label(root, text="", font=font, bg=layout["bg"], fg="#2e7d32")
    status.place(relx=0.5, rely=0.70, anchor="center")

    def save(_event=None):
        data = {k: e.get() for k, e in entries.items()}
        with open(args.save_to, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False)
        status.configure(text="Saved.")
        log("saved", path=args.save_to, data=data)

    relx, rely = layout["save"]
    tk.Button(root, text="Save", font=font, command=save, width=8).place(relx=relx, rely=rely, anchor="center")
    root.bind_all("<Control-s>", save)
    root.bind_all("<ButtonPress>", lambda e: log("click", x=e.x_root, y=e.y_root, button=e.num))
    root.bind_all("<Key>", lambda e: log("key", keysym=e.keysym))
    root.after(100, lambda: log("ready", width=width, height=height, layout=args.layout))
    root.mainloop()


if __name__ == "__main__":
    main()
