"""The bundled demo: a small contact form (Tk) and the GLM-4.5V replies that fill and save it.

`deskpilot demo` runs it end to end; tests and examples use the same form app.
"""

from __future__ import annotations

from pathlib import Path

from deskpilot.agent.desk.session import SYSTEM_PYTHON, AppSpec

DEMO_DIR = Path(__file__).resolve().parent
DEMO_APP = DEMO_DIR / "form_app.py"
DEMO_REPLIES = DEMO_DIR / "replies.json"
DEMO_TASK = (
    "Fill in the contact form with the name 'Ada Lovelace' and the email "
    "'ada@example.org', then save it."
)

def demo_app(save_to: Path, layout: str = "standard") -> AppSpec:
    """The demo form, saving to `save_to`; `layout="changed"` moves its fields (for cache and replay tests)."""
    return AppSpec(
        argv=[SYSTEM_PYTHON, str(DEMO_APP), "--save-to", str(save_to), "--layout", layout],
        binds=[{"host": str(DEMO_DIR), "writable": False}],
    )
