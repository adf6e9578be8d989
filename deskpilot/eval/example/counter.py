"""Example app: a counter. The window title always shows the count, so a check can read it.

Full screen, widgets at fixed fractions of the screen (thousandths are the
same on every size). Standard library only: it runs inside the sandbox.
``--small`` shows the count in a small font, as a status bar would (a press
then changes a few hundred pixels of the screen: tests of the stuck detector).
"""

import sys
import tkinter as tk

root = tk.Tk(className="deskpilot-counter")
w, h = root.winfo_screenwidth(), root.winfo_screenheight()
root.geometry(f"{w}x{h}+0+0")
root.attributes("-fullscreen", True)
root.configure(bg="#f3f4f6")
font = ("DejaVu Sans", -max(12, h // 30))
count = tk.IntVar(value=0)


def show(*_):
    root.title(f"Counter: {count.get()}")


count.trace_add("write", show)
show()
tk.Label(root, textvariable=count, font=("DejaVu Sans", -(14 if "--small" in sys.argv else h // 8), "bold"), bg="#f3f4f6").place(relx=0.5, rely=0.25, anchor="center")
tk.Button(root, text="Add one", font=font, command=lambda: count.set(count.get() + 1)).place(
    relx=0.35, rely=0.6, anchor="center", relwidth=0.2, relheight=0.1)
tk.Button(root, text="Reset", font=font, command=lambda: count.set(0)).place(
    relx=0.65, rely=0.6, anchor="center", relwidth=0.2, relheight=0.1)
root.mainloop()
