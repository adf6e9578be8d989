"""Reading OSWorld task files into a deskpilot suite.

Accepted: one task file, a folder of them (an ``examples`` folder with one
sub-folder per domain too), or an index file (``test_all.json``: domain ->
task ids) next to its ``examples`` folder. Each task becomes an ordinary
``SuiteTask``: its desktop has one share standing for ``/home/user`` (staged
from the file cache), its checks are agent/checks' comparison kinds, and its
``osworld`` plan holds the mapped set-up and postconfig steps. A task that
needs something not implemented here keeps its place in the suite with
``plan.skip`` set: the evaluation lists it as SKIPPED with that reason.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deskpilot.errors import ConfigError
from deskpilot.eval.osworld import steps as st
from deskpilot.eval.osworld.plan import Plan, Step
from deskpilot.eval.suite import Suite, SuiteTask

SCREEN = "1920x1080"  # OSWorld's VM screen
MAX_STEPS = 15  # OSWorld's run.py default
BROWSER_STEPS = {"chrome_open_tabs", "chrome_close_tabs", "update_browse_history", "login", "tidy_desktop"}
TABLE_OPTIONS = {"rules"}


class OSWorldTask(BaseModel):
    """The fields of an OSWorld task file that matter here (others are kept out, not refused)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")  # it names folders: no '/' or '..'
    instruction: str
    snapshot: str = ""
    config: list[dict[str, Any]] = Field(default_factory=list)
    related_apps: list[str] = Field(default_factory=list)
    evaluator: dict[str, Any]
    proxy: bool = False


class Sources(BaseModel):
    """Where files come from and what may be used: the user's flags."""

    files: Path | None = None  # OSWorld's cache layout: FILES/TASK_ID/...
    stage: Path  # where each task's /home/user is staged (inside the eval's --out)
    scripts: Path | None = None  # SCRIPTS/TASK_ID.json: scripted replies
    network: bool = False  # may files missing from the cache be downloaded (on the host)?
    assume_files: bool = False  # counting support only: every file counts as cached, nothing is copied


def is_osworld(path: Path) -> bool:
    """Is PATH an OSWorld task file, a folder of them, or an index file (not a deskpilot suite)?"""
    if path.is_dir():
        return any(_is_task_file(p) for p in _task_files(path))
    if path.suffix.lower() != ".json":
        return False
    data = _json(path)
    return _is_task(data) or _is_index(data)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None


def _is_task(data: Any) -> bool:
    return isinstance(data, dict) and "instruction" in data and "evaluator" in data and "id" in data


def _is_index(data: Any) -> bool:
    return (isinstance(data, dict) and bool(data) and "tasks" not in data
            and all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in data.values()))


def _task_files(folder: Path) -> list[Path]:
    """Task files of a folder (and of its domain sub-folders); OSWorld's Windows variants left out."""
    found = sorted(p for p in folder.glob("*.json") if not p.stem.endswith("-win"))
    found += sorted(p for p in folder.glob("*/*.json") if not p.stem.endswith("-win"))
    return found


def _is_task_file(path: Path) -> bool:
    try:
        return _is_task(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def task_files(path: Path, domain: str | None) -> list[tuple[Path, str]]:
    """(file, domain) of every task PATH names, filtered by domain."""
    if path.is_dir():
        files = [(p, p.parent.name if p.parent != path else path.name) for p in _task_files(path) if _is_task_file(p)]
    else:
        data = _json(path)
        if _is_task(data):
            files = [(path, path.parent.name)]
        elif _is_index(data):
            examples = path.parent / "examples"
            if not examples.is_dir():
                raise ConfigError(f"{path}: an index file needs its examples folder next to it ({examples})")
            files = []
            for dom, ids in data.items():
                for tid in ids:
                    f = examples / dom / f"{tid}.json"
                    if not f.is_file():
                        raise ConfigError(f"{path}: task {dom}/{tid} is listed but {f} does not exist")
                    files.append((f, dom))
        else:
            raise ConfigError(f"{path}: neither an OSWorld task nor an index file (domain -> task ids)")
    if domain:
        known = sorted({d for _, d in files})
        files = [(f, d) for f, d in files if d == domain]
        if not files:
            raise ConfigError(f"{path}: no tasks in domain {domain!r} (domains: {', '.join(known)})")
    if not files:
        raise ConfigError(f"{path}: no OSWorld task files found")
    return files


# -- files ------------------------------------------------------------------------------

def setup_file_name(url: str, path: str) -> str:
    """OSWorld's cache name of a set-up file: uuid5(NAMESPACE_URL, url) + '_' + basename(path)."""
    return f"{uuid.uuid5(uuid.NAMESPACE_URL, url)}_{Path(path).name}"


def _fetch(url: str, target: Path, src: Sources, what: str) -> None:
    """Make sure a cache file is there; download it into the cache first when allowed (on the host)."""
    if src.assume_files:
        return
    if not target.exists() and src.network and src.files is not None:
        from deskpilot.eval.osworld.download import download

        download(url, target)
    if not target.is_file():
        raise st.Unsupported(f"{what} not in the file cache (--osworld-files; downloads need --osworld-download)")


def _stage_setup_file(tid: str, item: dict[str, Any], share: Path, src: Sources) -> None:
    url, path = str(item.get("url", "")), str(item.get("path", ""))
    if not url or not path:
        raise st.Unsupported("a download step without url and path")
    target = Path(os.path.normpath(st.home_path(path, str(share))))
    if share not in target.parents:
        raise st.Unsupported("a set-up file outside /home/user")
    if src.assume_files:
        return
    if src.files is None:
        raise st.Unsupported("set-up file not in the file cache (--osworld-files; downloads need --osworld-download)")
    cached = src.files / tid / setup_file_name(url, path)
    _fetch(url, cached, src, "set-up file")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)


def _given(getter: dict[str, Any], key: str) -> tuple[list[str], int]:
    """(all values of `key`, index of the one the metric gets): OSWorld's `multi` getters hand the
    metric their `gives` (default [0]); the other files only have to lie next to it."""
    values = getter.get(key)
    if not getter.get("multi"):
        return [str(values or "")], 0
    gives = getter.get("gives", [0])
    if not isinstance(values, list) or gives != [0] and len(gives) != 1:
        raise st.Unsupported(f"getter {getter.get('type')} giving several files to one metric")
    return [str(v) for v in values], int(gives[0])


def _reference(tid: str, getter: dict[str, Any], stage: Path, src: Sources) -> str:
    """A cloud_file reference, from the cache (CACHE/TASK_ID/DEST), copied next to the task's stage."""
    if getter.get("multi"):
        dests, first = _given(getter, "dest")
        urls, _ = _given(getter, "path")
        paths = [_reference(tid, {"type": "cloud_file", "path": u, "dest": d}, stage, src) for u, d in zip(urls, dests)]
        return paths[first]
    dest = str(getter.get("dest") or "")
    target = stage / "expected" / Path(dest).name
    if src.assume_files and dest:
        return str(target)
    if not dest or src.files is None:
        raise st.Unsupported("reference file not in the file cache (--osworld-files; downloads need --osworld-download)")
    cached = src.files / tid / dest
    _fetch(str(getter.get("path", "")), cached, src, "reference file")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
    return str(target)


# -- steps ------------------------------------------------------------------------------

def _steps(tid: str, config: list[dict[str, Any]], share: Path, src: Sources, *, post: bool) -> list[Step]:
    out: list[Step] = []
    for step in config:
        kind, p = step.get("type"), step.get("parameters") or {}
        if kind == "download":
            if post:
                raise st.Unsupported("a download in the evaluator's postconfig")
            for item in p.get("files", []):
                _stage_setup_file(tid, item, share, src)
        elif kind == "open":
            out.append(st.open_step(str(p.get("path", "")), str(share)))
        elif kind == "launch":
            out.append(st.launch_step(p.get("command"), bool(p.get("shell")), str(share)))
        elif kind in ("execute", "command"):
            out.extend(st.command_steps(p.get("command"), bool(p.get("shell")), str(share)))
        elif kind == "sleep":
            out.append(Step(kind="sleep", seconds=min(float(p.get("seconds", 0)), st.SLEEP_CAP)))
        elif kind == "activate_window":
            out.append(Step(kind="activate", window=str(p.get("window_name", "")), strict=bool(p.get("strict"))))
        elif kind in BROWSER_STEPS:
            raise st.Unsupported(f"a browser step ({kind})")
        elif kind in ("googledrive", "google_drive"):
            raise st.Unsupported("a Google Drive step")
        else:
            raise st.Unsupported(f"set-up step {kind}")
    return out


# -- evaluator -> checks -----------------------------------------------------------------

def _as_list(value: Any, n: int) -> list[Any]:
    return list(value) if isinstance(value, list) else [value] * n


def _result_file(getter: Any, share: Path) -> str:
    if not isinstance(getter, dict) or getter.get("type") != "vm_file":
        raise st.Unsupported(f"result getter {getter.get('type') if isinstance(getter, dict) else getter}")
    paths, first = _given(getter, "path")
    return os.path.normpath(st.home_path(paths[first], str(share)))


def _table_rules(rules: Any) -> list[dict[str, Any]]:
    from deskpilot.agent.checks.tables import CELL_PROPS, SHEET_RULES, VALUE_METHODS

    if not isinstance(rules, list) or not rules:
        raise st.Unsupported("compare_table without rules")
    for rule in rules:
        kind = rule.get("type") if isinstance(rule, dict) else None
        if kind not in SHEET_RULES:
            raise st.Unsupported(f"compare_table rule {kind}")
        for prop, want in (rule.get("props") or {}).items():
            if prop not in CELL_PROPS:
                raise st.Unsupported(f"compare_table check_cell property {prop}")
            method = str((want or {}).get("method", ""))
            if not any(method == v or (v.endswith((":", ".")) and method.startswith(v)) or
                       (v == "re" and method.startswith("re")) for v in VALUE_METHODS):
                raise st.Unsupported(f"compare_table value method {method}")
    return rules


def _check(tid: str, func: str, result: Any, expected: Any, options: Any, share: Path, stage: Path,
           src: Sources) -> dict[str, Any]:
    options = options if isinstance(options, dict) else {}
    file = _result_file(result, share)

    def gold() -> str:
        if not isinstance(expected, dict) or expected.get("type") != "cloud_file":
            raise st.Unsupported(f"expected getter {expected.get('type') if isinstance(expected, dict) else None}")
        return _reference(tid, expected, stage, src)

    def rule() -> dict[str, Any]:
        if not isinstance(expected, dict) or expected.get("type") != "rule":
            raise st.Unsupported(f"expected getter {expected.get('type') if isinstance(expected, dict) else None}")
        return expected.get("rules") or {}

    if func == "compare_table":
        spec: dict[str, Any] = {"rules": _table_rules(options.get("rules"))}
        if expected:
            spec["expected"] = gold()
        return {"file": file, "compare_table": spec}
    if func == "compare_csv":
        return {"file": file, "compare_csv": {"expected": gold(), **{k: bool(options[k]) for k in
                                                                   ("strict", "ignore_case") if k in options}}}
    if func == "compare_docx_files":
        keys = ("ignore_blanks", "ignore_case", "ignore_order", "content_only")
        return {"file": file, "compare_docx": {"expected": gold(), **{k: bool(options[k]) for k in keys if k in options}}}
    if func == "compare_line_spacing":
        return {"file": file, "line_spacing": {"expected": gold()}}
    if func == "compare_docx_tables":
        return {"file": file, "docx_tables": {"expected": gold()}}
    if func == "compare_pdfs":
        return {"file": file, "compare_pdf": {"expected": gold()}}
    if func == "exact_match":
        return {"file": file, "exact_match": str(rule().get("expected", ""))}
    if func == "check_include_exclude":
        r = rule()
        return {"file": file, "include_exclude": {"include": list(r.get("include", [])),
                                                   "exclude": list(r.get("exclude", []))}}
    raise st.Unsupported(f"metric {func}")


def _checks(task: OSWorldTask, share: Path, stage: Path, src: Sources) -> tuple[list[dict[str, Any]], list[str]]:
    """(checks, result files) for the evaluator; Unsupported names the first missing piece."""
    ev = task.evaluator
    func: Any = ev.get("func")
    many = isinstance(func, list)
    funcs: list[Any] = func if many else [func]
    n = len(funcs)
    results, expecteds = _as_list(ev.get("result"), n), _as_list(ev.get("expected"), n)
    given: Any = ev.get("options")
    options: list[Any] = given if many and isinstance(given, list) else [given] * n
    checks = [_check(task.id, str(f), results[i] if i < len(results) else None,
                     expecteds[i] if i < len(expecteds) else None, options[i] if i < len(options) else None,
                     share, stage, src) for i, f in enumerate(funcs)]
    files = [c["file"] for c in checks]
    if many and ev.get("conj", "and") == "or":
        checks = [{"any_of": checks}]
    return checks, files


# -- the suite ---------------------------------------------------------------------------

def convert(task: OSWorldTask, domain: str, src: Sources) -> SuiteTask:
    """One OSWorld task -> a suite task (with plan.skip set when it cannot run here)."""
    stage = src.stage / task.id
    if stage.exists():
        shutil.rmtree(stage)
    share = stage / "home"
    share.mkdir(parents=True)
    plan = Plan(domain=domain, share=str(share))
    checks: list[dict[str, Any]] = []
    try:
        if task.proxy:
            raise st.Unsupported("proxy: true needs the network (the desktops here have none)")
        plan.setup = _steps(task.id, task.config, share, src, post=False)
        if task.evaluator.get("func") == "infeasible":
            plan.infeasible = True
        else:
            checks, files = _checks(task, share, stage, src)
            plan.postconfig = _steps(task.id, task.evaluator.get("postconfig") or [], share, src, post=True)
    except st.Unsupported as why:
        plan.skip, checks = str(why), []
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        plan.skip, checks = f"a task file this reader does not understand ({type(err).__name__})", []
    script = src.scripts / f"{task.id}.json" if src.scripts is not None else None
    tags = ["osworld", domain] + (["infeasible"] if plan.infeasible else [])
    return SuiteTask(id=task.id, task=task.instruction, desktop={"size": SCREEN, "shares": [share]},
                     max_steps=MAX_STEPS, tags=tags, checks=checks, osworld=plan,
                     script=str(script) if script is not None and script.is_file() else None)


def load_osworld(path: str | Path, src: Sources, domain: str | None = None) -> Suite:
    """Read OSWorld task files (see the module docstring) into a Suite; one-line ConfigError on a mistake."""
    path = Path(path)
    tasks = []
    for file, dom in task_files(path, domain):
        try:
            raw = OSWorldTask.model_validate(_json(file))
        except ValidationError as err:
            first = err.errors()[0]
            raise ConfigError(f"{file}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        tasks.append(convert(raw, dom, src))
    name = path.stem if path.is_file() else path.name
    try:
        return Suite(name=f"osworld-{name}" + (f"-{domain}" if domain else ""), tasks=tasks, path=path.resolve())
    except ValidationError as err:
        raise ConfigError(f"{path}: {err.errors()[0]['msg'].removeprefix('Value error, ')}") from None
