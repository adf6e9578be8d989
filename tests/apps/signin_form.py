"""A GTK3 sign-in form for the record tests (run with the system python: python3-gi).

"User" and "Password" entries (the password one hides its text, so its
accessible role is "password text"), a "Remember me" check box and a
"Sign in" button that writes ``USER:PASSWORD`` to the file given as the first
argument and shows "Signed in as USER" in a label.
"""

import sys

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import Gtk  # noqa: E402


def main():
    out = sys.argv[1]
    window = Gtk.Window(title="Sign in")
    window.set_default_size(420, 260)
    window.connect("destroy", Gtk.main_quit)
    grid = Gtk.Grid(row_spacing=10, column_spacing=10, margin=20)
    window.add(grid)
    fields = {}
    for row, name in enumerate(("User", "Password")):
        label = Gtk.Label(label=name)
        entry = Gtk.Entry()
        entry.set_visibility(name != "Password")
        label.set_mnemonic_widget(entry)  # the entry's accessible name is its label
        grid.attach(label, 0, row, 1, 1)
        grid.attach(entry, 1, row, 2, 1)
        fields[name] = entry
    remember = Gtk.CheckButton(label="Remember me")
    grid.attach(remember, 1, 2, 2, 1)
    status = Gtk.Label(label="Not signed in")
    button = Gtk.Button(label="Sign in")

    def sign_in(_button):
        user, password = fields["User"].get_text(), fields["Password"].get_text()
        with open(out, "w", encoding="utf-8") as f:
            f.write(f"{user}:{password}")
        status.set_text(f"Signed in as {user}")

    button.connect("clicked", sign_in)
    grid.attach(button, 1, 3, 1, 1)
    grid.attach(status, 0, 4, 3, 1)
    window.show_all()
    Gtk.main()


if __name__ == "__main__":
    main()
