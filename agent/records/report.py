"""report.html: one self-contained trace viewer per run (images inline, no network).

It is what a person opens when a run went wrong, so it leads with the run's
facts and outcome, marks the step that ended it, and keeps every screenshot at
full size one click away.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import jinja2

from deskpilot.agent.records.images import inline_image
from deskpilot.agent.records.marks import COLOURS, LEGEND, action_marks, box_marks, kind_of
from deskpilot.agent.records.trajectory import LoadedRun, load_run

REPORT = "report.html"
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("deskpilot.agent.records", "templates"),
    autoescape=True,  # model text is untrusted: never let it become markup
)
_LABELS = dict(LEGEND) | {"left": "click"}


def checks_of(run_dir: Path) -> list[dict[str, Any]]:
    """The check results a run folder recorded (CheckResult dumps; empty if none ran)."""
    return [c.model_dump(mode="json") for c in load_run(Path(run_dir)).checks]


def _facts(run: LoadedRun, status: str, dry: bool) -> list[tuple[str, str]]:
    s = run.settings
    session = s.get("session") or {}
    loop = s.get("loop") or {}
    sampling = s.get("sampling") or {}
    thinking = sampling.get("thinking", loop.get("thinking"))  # what was sent, else what was asked for
    policy = s.get("policy") or {}
    size = session.get("size") or s.get("screen_size")
    apps = [shlex.join(a.get("argv", [])) for a in session.get("apps", []) if isinstance(a, dict)]
    limits = [f"max {policy['max_steps']} steps" if "max_steps" in policy else "",
              f"on violation: {policy['on_violation']}" if policy.get("on_violation") else "",
              "deny keys " + ", ".join(policy["deny_keys"]) if policy.get("deny_keys") else "",
              "allow keys " + ", ".join(policy["allow_keys"]) if policy.get("allow_keys") else "",
              f"{len(policy['deny_regions'])} denied region(s)" if policy.get("deny_regions") else "",
              f"{len(policy['allow_regions'])} allowed region(s)" if policy.get("allow_regions") else ""]
    model = s.get("model") or ""
    if s.get("script"):
        model = f"{model} (scripted replies: {s['script']})".strip()
    facts = [
        ("Model", model or s.get("backend", "")),
        ("Endpoint", s.get("base_url") or ""),
        ("Dialect", s.get("dialect", "")),
        ("Thinking", "on" if thinking is True else ("off" if thinking is False else "")),
        ("Sampling", ", ".join(f"{k} {v}" for k, v in sampling.items() if k != "thinking" and v is not None)),
        ("App", "; ".join(apps)),
        ("Screen", f"{size[0]}x{size[1]}" if isinstance(size, (list, tuple)) and len(size) == 2 else ""),
        ("Sandbox", " · ".join(x for x in [session.get("isolation", ""),
                                             "network on" if session.get("network") else ("no network" if session else "")] if x)),
        ("Policy", " · ".join(x for x in limits if x)),
        ("Dry run", "yes: nothing was performed" if dry else "no"),
        ("Started", run.steps[0].time if run.steps else ""),
    ]
    return [(k, str(v)) for k, v in facts if v]


def _replay_diffs(run_dir: Path) -> dict[int, list[dict[str, Any]]]:
    """What `deskpilot replay` left when a screen differed: per step, the diff and the live screen."""
    found: dict[int, list[dict[str, Any]]] = {}
    for folder in sorted(p for p in run_dir.glob("replay-*") if p.is_dir()):
        for diff in sorted(folder.glob("diverged_step_*_diff.png")):
            try:
                step = int(diff.name.split("_")[2])
            except (IndexError, ValueError):
                continue
            live = diff.with_name(diff.name.replace("_diff.png", "_live.png"))
            found.setdefault(step, []).append({"name": folder.name, "diff": inline_image(run_dir, diff).url,
                                               "live": inline_image(run_dir, live).url if live.exists() else None})
    return found


def _totals_text(steps: int, t: dict[str, Any]) -> str:
    """The run's cost in one readable line (the raw totals stay in the end record)."""
    parts = [f"{steps} step(s)"]
    if "wall_s" in t:
        parts.append(f"{t['wall_s']:g} s")
    if t.get("model_ms"):
        ms = t["model_ms"]
        parts.append(f"model {ms / 1000:.1f} s" if ms >= 1000 else f"model {ms:g} ms")
    if t.get("prompt_tokens") or t.get("completion_tokens"):
        parts.append(f"tokens {t.get('prompt_tokens', 0)} in / {t.get('completion_tokens', 0)} out")
    if t.get("image_tokens"):
        parts.append(f"image tokens {t['image_tokens']}")
    if t.get("prompt_tokens_est"):
        parts.append(f"prompt ~{t['prompt_tokens_est']} tokens, {100 * t.get('prefix_share', 0):.0f}% reusable prefix")
    if t.get("model_calls_saved"):
        parts.append(f"{t['model_calls_saved']} model call(s) saved by the cache")
    return " · ".join(parts)


def _failing_step(run: LoadedRun, status: str) -> int | None:
    """The step a reader should look at first when the run did not succeed."""
    if status in ("DONE", "PASSED", "FAILED") or not run.steps:  # FAILED: the checks say why, not a step
        return None
    for rec in run.steps:
        if rec.error or not rec.policy.allowed:
            return rec.step
    return run.steps[-1].step


def _step_view(rec, run_dir: Path, dry: bool, failing: int | None) -> dict[str, Any]:
    shot = inline_image(run_dir, rec.screenshot) if rec.screenshot else None
    image, w, h = (shot.url, shot.width, shot.height) if shot else (None, 0, 0)
    w, h = (w, h) if image else tuple(rec.screen_size)
    action = rec.action.model_dump(mode="json") if hasattr(rec.action, "model_dump") else rec.action
    action_type = (action or {}).get("type")
    terminal = action_type in ("done", "fail")
    if not rec.policy.allowed:
        outcome = ("blocked", f"Not performed: {rec.policy.reason}")
    elif terminal:
        outcome = ("end", "Ends the run: " + str(action_type).upper())
    elif dry and action:
        outcome = ("dry", "Not performed (dry run)")
    elif rec.performed:
        outcome = ("ok", "Performed")
    elif action:
        outcome = ("muted", "Not performed")
    else:
        outcome = ("error", "No action (the reply did not parse)")
    return dict(
        rec.model_dump(mode="json"),
        image=image, width=w, height=h, kind=kind_of(action), outcome=outcome,
        image_missing=shot.missing if shot else "",
        kind_label=_LABELS.get(kind_of(action)) or (action_type or "no action"),
        failing=rec.step == failing, planned=dry or not rec.policy.allowed,
        marks=action_marks(action, rec.points, w, h) if image else [],
        action_json=json.dumps(action, ensure_ascii=False, indent=1) if action else "",
        memory_json=json.dumps(rec.memory, ensure_ascii=False, indent=1),
    )


def _local(run_dir: Path, path: str) -> Path:
    """An evidence file: where it was written, or beside the report if the folder moved.
    Only files inside the run folder are inlined (inline_image refuses the rest)."""
    return Path(path) if Path(path).is_file() else run_dir / Path(path).name


def build_report(run_dir: Path) -> Path:
    """(Re)build report.html in a run folder and return its path."""
    run = load_run(Path(run_dir))
    dry = bool(run.settings.get("loop", {}).get("dry_run"))
    end = run.end
    status = end.status.value if end else "INCOMPLETE"
    failing = _failing_step(run, status)
    steps = [_step_view(rec, run.run_dir, dry, failing) for rec in run.steps]
    replays = _replay_diffs(run.run_dir)
    for view in steps:
        view["replays"] = replays.get(view["step"], [])
    queries = []
    for q in run.queries:
        shot = inline_image(run.run_dir, q.screenshot) if q.screenshot else None
        image, w, h = (shot.url, shot.width, shot.height) if shot else (None, 0, 0)
        marks = box_marks(q.result, q.query, w, h) if image and q.kind == "locate" else []
        queries.append(dict(q.model_dump(mode="json"), image=image, width=w, height=h, marks=marks,
                            image_missing=shot.missing if shot else "",
                            result_json=json.dumps(q.result, ensure_ascii=False)))
    humans = []
    for turn in run.humans:  # a person's turns: take-over, answers, a recorded demonstration
        shots = [inline_image(run.run_dir, shot) for shot in (turn.screenshot_before, turn.screenshot_after) if shot]
        humans.append(dict(turn.model_dump(mode="json"), did=[_did(item) for item in turn.actions or []],
                           shots=[{"image": s.url, "width": s.width, "height": s.height} for s in shots if s.url]))
    final = None
    if end and end.screenshot:
        shot = inline_image(run.run_dir, end.screenshot)
        final = {"image": shot.url, "width": shot.width, "height": shot.height, "missing": shot.missing}
    checks = []
    for c in run.checks:
        diff = c.evidence.get("diff")
        checks.append(dict(c.model_dump(mode="json"), evidence_json=json.dumps(c.evidence, ensure_ascii=False, indent=1),
                           diff_image=inline_image(run.run_dir, _local(run.run_dir, diff)).url
                           if isinstance(diff, str) else None))
    html = _ENV.get_template("report.html.j2").render(
        task=run.settings.get("task", "(unknown task)"),
        status=status, dry=dry,
        reason=end.reason if end else "the run did not finish (no end record)",
        answer=end.answer if end else None,
        totals=end.totals if end else {},
        facts=_facts(run, status, dry) + ([("Replays", "diverged at step " + ", ".join(map(str, sorted(replays))))]
                                         if replays else []),
        totals_text=_totals_text(len(steps), end.totals if end else {}),
        checks=checks, checks_failed=sum(1 for c in checks if not c["passed"]),
        steps=steps, failing=failing, final=final,
        queries=queries, humans=humans, legend=[(COLOURS[k], label) for k, label in LEGEND], colours=COLOURS,
        skipped=run.skipped_lines,
        cached_steps=sum(1 for rec in run.steps if rec.cached),
    )
    out = run.run_dir / REPORT
    tmp = out.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out


def _did(item) -> str:
    """One line per action of a person's turn, as the report lists them."""
    action = item.action
    if action.type == "type":
        return f"type {action.text!r}"
    if action.type == "key":
        return f"key {action.combo}"
    where = f"{action.type} at {action.x},{action.y}"
    element = item.element or {}
    return f"{where} ({element.get('role', '')} {element.get('name', '')!r})" if element else where
