"""Example app: a to-do list. Enter adds the typed item; Save writes the list to a file.

Usage: python3 todo.py SAVE_TO
"""

import sys
import tkinter as tk

save_to = sys.argv[1]
root = tk.Tk(className="deskpilot-todo")
root.title("To-do")
w, h = root.winfo_screenwidth(), root.winfo_screenheight()
root.geometry(f"{w}x{h}+0+0")
root.attributes("-fullscreen", True)
root.configure(bg="#eef6ee")
font = ("DejaVu Sans", -max(12, h // 32))
entry = tk.Entry(root, font=font)
entry.place(relx=0.4, rely=0.15, anchor="center", relwidth=0.5)
items = tk.Listbox(root, font=font)
items.place(relx=0.5, rely=0.55, anchor="center", relwidth=0.7, relheight=0.5)


def add(_event=None):
    text = entry.get().strip()
    if text:
        items.insert("end", text)
        entry.delete(0, "end")


def save():
    with open(save_to, "w", encoding="utf-8") as f:
        f.write("".join(item + "\n" for item in items.get(0, "end")))
    root.title(f"To-do (saved {items.size()})")


entry.bind("<Return>", add)
tk.Button(root, text="Add", font=font, command=add).place(relx=0.75, rely=0.15, anchor="center", relwidth=0.12)
tk.Button(root, text="Save", font=font, command=save).place(relx=0.5, rely=0.88, anchor="center", relwidth=0.2)
root.mainloop()
