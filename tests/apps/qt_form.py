"""A tiny PyQt5 form for the accessibility tests (run with the system python: python3-pyqt5).

Widgets: a "Name" label buddied to a line edit (its accessible name becomes
"Name"), and a "Greet" push button. Every event is printed as a JSON line on
stdout, so tests read what the app saw from its log.
"""

import json
import sys

from PyQt5.QtWidgets import QApplication, QFormLayout, QLabel, QLineEdit, QPushButton, QWidget


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    app = QApplication(sys.argv)
    window = QWidget()
    window.setWindowTitle("QtForm")
    window.resize(400, 160)
    form = QFormLayout(window)
    edit = QLineEdit()
    label = QLabel("&Name")
    label.setBuddy(edit)
    form.addRow(label, edit)
    button = QPushButton("Greet")
    button.clicked.connect(lambda: emit(ev="clicked", name="Greet", text=edit.text()))
    form.addRow(button)
    edit.textChanged.connect(lambda text: emit(ev="changed", text=text))
    window.show()
    emit(ev="shown")
    sys.exit(app.exec_())


if __name__ == "__main__":
    main()
