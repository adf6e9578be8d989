"""Example app: a settings page (check boxes, radio buttons, a slider); Apply writes JSON.

Usage: python3 settings.py SAVE_TO
"""

import json
import sys
import tkinter as tk

save_to = sys.argv[1]
root = tk.Tk(className="deskpilot-settings")
w, h = root.winfo_screenwidth(), root.winfo_screenheight()
root.geometry(f"{w}x{h}+0+0")
root.attributes("-fullscreen", True)
bg = "#f5f0e6"
root.configure(bg=bg)
font = ("DejaVu Sans", -max(12, h // 32))
dark, notify = tk.BooleanVar(value=False), tk.BooleanVar(value=True)
size = tk.StringVar(value="medium")
volume = tk.IntVar(value=0)


def title(*_):
    root.title(f"Settings: volume {volume.get()}")


volume.trace_add("write", title)
title()
tk.Checkbutton(root, text="Dark mode", variable=dark, font=font, bg=bg).place(relx=0.3, rely=0.15, anchor="w")
tk.Checkbutton(root, text="Notifications", variable=notify, font=font, bg=bg).place(relx=0.3, rely=0.25, anchor="w")
for n, name in enumerate(("small", "medium", "large")):
    tk.Radiobutton(root, text=name.title(), value=name, variable=size, font=font, bg=bg).place(
        relx=0.3 + 0.15 * n, rely=0.4, anchor="w")
tk.Scale(root, from_=0, to=100, orient="horizontal", variable=volume, showvalue=False, sliderlength=max(20, w // 40),
         width=max(16, h // 25), bg=bg).place(relx=0.5, rely=0.6, anchor="center", relwidth=0.6)


def apply():
    with open(save_to, "w", encoding="utf-8") as f:
        json.dump({"dark": dark.get(), "notifications": notify.get(), "size": size.get(), "volume": volume.get()}, f)
    root.title(f"Settings: applied, volume {volume.get()}")


tk.Button(root, text="Apply", font=font, command=apply).place(relx=0.5, rely=0.85, anchor="center", relwidth=0.2)
root.mainloop()
