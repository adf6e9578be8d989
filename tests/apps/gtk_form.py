"""A small GTK3 form for the accessibility tests (run with the system python: python3-gi).

Widgets: an "Email" label tied to an entry, a "Subscribe" check box, a "Save"
button that becomes enabled once the entry holds text, a disabled "Delete"
button, two buttons both named "Apply" (for strictness), and a "Late" button
that shows ``--delay`` seconds after "Subscribe" is checked (for auto-waiting;
at once without ``--delay``). Every event is printed
as a JSON line on stdout, so tests read what the app saw from its log.
"""

import argparse
import json
import sys

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--title", default="Form")
    parser.add_argument("--top", type=int, default=16, help="pixels above the form (moves every widget down)")
    args = parser.parse_args()

    window = Gtk.Window(title=args.title)
    window.set_default_size(480, 320)
    window.connect("destroy", Gtk.main_quit)
    grid = Gtk.Grid(row_spacing=8, column_spacing=8, margin=16)
    grid.set_margin_top(args.top)
    window.add(grid)

    label = Gtk.Label(label="Email")
    entry = Gtk.Entry()
    label.set_mnemonic_widget(entry)  # the entry's accessible name becomes "Email"
    grid.attach(label, 0, 0, 1, 1)
    grid.attach(entry, 1, 0, 2, 1)

    check = Gtk.CheckButton(label="Subscribe")
    grid.attach(check, 0, 1, 2, 1)

    save = Gtk.Button(label="Save")
    save.set_sensitive(False)
    save.connect("clicked", lambda b: emit(ev="clicked", name="Save", text=entry.get_text()))
    entry.connect("changed", lambda e: save.set_sensitive(bool(e.get_text())))
    grid.attach(save, 0, 2, 1, 1)

    delete = Gtk.Button(label="Delete")
    delete.set_sensitive(False)
    grid.attach(delete, 1, 2, 1, 1)

    for column in (0, 1):
        apply = Gtk.Button(label="Apply")
        apply.connect("clicked", lambda b, c=column: emit(ev="clicked", name="Apply", column=c))
        grid.attach(apply, column, 3, 1, 1)

    status = Gtk.Label(label="Total: 42")
    grid.attach(status, 0, 4, 2, 1)

    def show_late():
        late = Gtk.Button(label="Late")
        late.connect("clicked", lambda b: emit(ev="clicked", name="Late"))
        grid.attach(late, 0, 5, 1, 1)
        late.show()
        emit(ev="late_shown")
        return False

    def toggled(button):
        emit(ev="toggled", active=button.get_active())
        if args.delay > 0 and button.get_active():
            GLib.timeout_add(int(args.delay * 1000), show_late)

    check.connect("toggled", toggled)
    if args.delay <= 0:
        show_late()
    window.show_all()
    emit(ev="ready")
    Gtk.main()


if __name__ == "__main__":
    main()
