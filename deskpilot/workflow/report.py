"""One self-contained HTML page for a workflow run: every step, its outcome, a thumbnail of the screen.

Built from ``workflow.jsonl`` alone (so it can be rebuilt for a run that was
killed), with each step's screenshot inlined as a small JPEG and a link to
each agent step's own report.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from deskpilot.agent.records.images import inline_image
from deskpilot.workflow.record import read_log

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.45em;vertical-align:top;text-align:left}
.passed{color:#17803d}.failed,.error{color:#b42318}.skipped{color:#777}
img{max-width:360px;border:1px solid #ccc}code{background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}
.banner{padding:.7em 1em;border-radius:6px;margin-bottom:1em}.ok{background:#e7f6ec}.bad{background:#fdecea}
"""


def _thumb(run_dir: Path, name: str, alt: str = "screen after the step") -> str:
    """A small inline copy of a step's screen; only files inside the run folder (see inline_image)."""
    shot = inline_image(run_dir, name, thumbnail=720, quality=70)
    if shot.url is None:
        return f'<span class="skipped">(no screenshot: {escape(shot.missing)})</span>'
    return f'<img alt="{escape(alt)}" src="{shot.url}">'


def build_workflow_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    records = read_log(run_dir)
    start = next((r for r in records if r["record"] == "start"), {})
    end = next((r for r in records if r["record"] == "end"), None)
    name = start.get("workflow", {}).get("name", "workflow")
    ok = bool(end and end.get("ok"))
    if end is None:
        summary = "the run did not finish (no end record)"
    else:
        summary = f"{'all steps passed' if ok else end.get('status', 'failed')} in {end.get('seconds', 0):.1f} s"
        if end.get("error"):
            summary += f": {end['error']}"
        if end.get("steps_not_run"):
            summary += f"; {end['steps_not_run']} step(s) not run"
    steps = [r for r in records if r["record"] == "step"]
    failing = next((r for r in steps if r.get("status") in ("failed", "error")), None)
    if failing is not None:  # the header names the step to look at first
        summary += f"; step {failing['number']} ({failing['label']}) {failing['status']}: {failing.get('message') or ''}"
    rows = []
    for rec in steps:
        detail = escape(rec.get("message") or "")
        if rec.get("answer") is not None:
            detail += f"<br>answer: <code>{escape(rec['answer'])}</code>"
        for check in rec.get("checks") or []:
            mark = "passed" if check["passed"] else "failed"
            detail += f'<br><span class="{mark}">{mark}</span> {escape(check["label"])}: {escape(check["message"])}'
        if rec.get("agent_run"):
            link = f"{rec['agent_run']}/report.html"
            detail += f'<br><a href="{escape(link)}">agent run report</a>'
        for what, name in (rec.get("evidence") or {}).items():
            detail += f'<br>{escape(what.replace("_", " "))}: <a href="{escape(name)}">{escape(name)}</a>'
        alt = "screen when the step failed" if rec.get("evidence") else "screen after the step"
        shot = _thumb(run_dir, str(rec["screenshot"]), alt) if rec.get("screenshot") else ""
        rows.append(f'<tr><td>{escape(rec["number"])}</td><td>{escape(rec["label"])}</td>'
                    f'<td class="{escape(rec["status"])}">{escape(rec["status"])}</td>'
                    f'<td>{rec.get("seconds", 0):.1f} s</td><td>{detail}</td><td>{shot}</td></tr>')
    variables = "".join(f"<li><code>{escape(k)}</code> = <code>{escape(str(v))}</code></li>"
                        for k, v in ((end or start).get("vars") or {}).items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(name)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>Workflow {escape(name)}</h1>"
            f"<div class='banner {'ok' if ok else 'bad'}'>{escape(summary)}</div>"
            f"<table><tr><th>#</th><th>step</th><th>result</th><th>time</th><th>details</th><th>screen</th></tr>"
            f"{''.join(rows)}</table><h2>Variables</h2><ul>{variables}</ul></body></html>")
    target = run_dir / "report.html"
    target.write_text(page, encoding="utf-8")
    return target
