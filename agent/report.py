"""report.html: one self-contained page per run (images inline, no network)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import jinja2
from PIL import Image

from deskpilot.agent.trajectory import load_run

REPORT = "report.html"
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("deskpilot.agent", "templates"),
    autoescape=True,  # model text is untrusted: never let it become markup
)


def _inline(path: Path) -> tuple[str | None, int, int]:
    if not path.is_file():
        return None, 0, 0
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except OSError:
        return None, 0, 0
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), rgb.width, rgb.height


def _scroll_arrow(action: dict | None, points, width: int, height: int) -> tuple | None:
    if not action or action.get("type") != "scroll" or not points:
        return None
    x, y = points[0]
    d = max(40, width // 25)
    dx, dy = {"up": (0, -d), "down": (0, d), "left": (-d, 0), "right": (d, 0)}[action.get("direction", "down")]
    if not (0 <= x + dx < width and 0 <= y + dy < height):  # near an edge: draw it pointing inwards from there
        return (x - dx, y - dy, x, y)
    return (x, y, x + dx, y + dy)


def _local(run_dir: Path, path: str) -> Path:
    """An evidence file: where it was written, or beside the report if the folder moved."""
    return Path(path) if Path(path).is_file() else run_dir / Path(path).name


def build_report(run_dir: Path) -> Path:
    """(Re)build report.html in a run folder and return its path."""
    run = load_run(Path(run_dir))
    dry = bool(run.settings.get("loop", {}).get("dry_run"))
    steps = []
    for rec in run.steps:
        action = rec.action.model_dump(mode="json") if rec.action is not None else None
        image, w, h = _inline(run.run_dir / rec.screenshot) if rec.screenshot else (None, 0, 0)
        w, h = (w, h) if image else tuple(rec.screen_size)
        scale = max(w, h, 1)
        steps.append(
            dict(
                rec.model_dump(mode="json"),
                image=image, width=w, height=h, dry_run=dry,
                radius=max(6, scale // 110), stroke=max(2, scale // 480),
                action_json=json.dumps(action, ensure_ascii=False, indent=1) if action else "",
                memory_json=json.dumps(rec.memory, ensure_ascii=False, indent=1),
                scroll=_scroll_arrow(action, rec.points, w, h),
            )
        )
    queries = []
    for q in run.queries:
        image = _inline(run.run_dir / q.screenshot)[0] if q.screenshot else None
        queries.append(dict(q.model_dump(mode="json"), image=image, result_json=json.dumps(q.result, ensure_ascii=False)))
    checks = []
    for c in run.checks:
        diff = c.evidence.get("diff")
        checks.append(dict(c.model_dump(mode="json"), evidence_json=json.dumps(c.evidence, ensure_ascii=False, indent=1),
                           diff_image=_inline(_local(run.run_dir, diff))[0] if isinstance(diff, str) else None))
    end = run.end
    html = _ENV.get_template("report.html.j2").render(
        task=run.settings.get("task", "(unknown task)"),
        status=end.status.value if end else "INCOMPLETE",
        reason=end.reason if end else "the run did not finish (no end record)",
        answer=end.answer if end else None,
        totals=end.totals if end else {},
        steps=steps,
        queries=queries,
        skipped=run.skipped_lines,
        checks=checks,
        cached_steps=sum(1 for rec in run.steps if rec.cached),
    )
    out = run.run_dir / REPORT
    tmp = out.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
