"""The recording written in the format its file name asks for: a workflow, a pytest file, an eval task.

=================================  ==========================================
``--out``                          writes
=================================  ==========================================
``NAME.yaml`` / ``NAME.yml``       a workflow (``deskpilot workflow run``)
``test_NAME.py`` / ``NAME_test.py``  a pytest file (the ``desktop`` and ``pilot``
                                   fixtures of deskpilot's pytest plugin)
``*suite*.yaml``, ``NAME.json``    a task of an eval suite (``deskpilot eval``),
                                   added to the file if it exists
=================================  ==========================================

Every format holds the desktop (size, apps, shares). A workflow resolves
relative paths where it is run, so it keeps them as given (relative to where
``record`` ran); a pytest file and a suite resolve them in their own folder,
so theirs are made relative to it. The
pytest file and the eval task replay the same steps: the pytest file with the
desktop's locators, OCR and keys; the eval task as scripted GLM-4.5V replies
(clicks at their recorded points, since a model's reply names points) whose
checks are the recording's checks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any, Literal

import yaml

from deskpilot.errors import UsageError
from deskpilot.record.compile import Compiled

Format = Literal["workflow", "pytest", "suite"]


def output_format(path: Path) -> Format:
    """Which format ``path`` asks for; UsageError (one line) for any other name."""
    name, suffix = path.name.lower(), path.suffix.lower()
    if suffix == ".py":
        if name.startswith("test_") or name.endswith("_test.py"):
            return "pytest"
        raise UsageError(f"--out {path.name}: pytest collects test_NAME.py or NAME_test.py; name the file so")
    if suffix == ".json" or (suffix in (".yaml", ".yml") and "suite" in path.stem.lower()):
        return "suite"
    if suffix in (".yaml", ".yml"):
        return "workflow"
    raise UsageError(f"--out {path.name}: give NAME.yaml (a workflow), test_NAME.py (a pytest file) "
                     f"or NAME_suite.yaml / NAME.json (an eval suite task)")


def portable_desktop(desktop: dict[str, Any], cwd: Path, folder: Path) -> dict[str, Any]:
    """``desktop`` with its relative shares and app arguments that name existing paths made relative to
    ``folder`` (where the written file is: each format resolves relative paths there)."""
    def moved(word: str) -> str:
        if os.path.isabs(word) or not (cwd / word).exists():
            return word
        return os.path.relpath(cwd / word, folder)

    apps = []
    for app in desktop.get("apps", []):
        try:
            words = shlex.split(app)
        except ValueError:
            apps.append(app)
            continue
        apps.append(shlex.join([words[0], *map(moved, words[1:])]) if words else app)
    return {**desktop, "apps": apps, "shares": [moved(s) for s in desktop.get("shares", [])]}


def rebased(steps: list[Compiled], cwd: Path, folder: Path) -> list[Compiled]:
    """``steps`` with the relative files of their checks (relative to ``cwd``) made relative to ``folder``."""
    out = []
    for compiled in steps:
        check = compiled.step.get("check")
        if isinstance(check, dict) and isinstance(check.get("file"), str) and not os.path.isabs(check["file"]):
            moved = {**check, "file": os.path.relpath(cwd / check["file"], folder)}
            compiled = compiled.model_copy(update={"step": {**compiled.step, "check": moved}})
        out.append(compiled)
    return out


def write_output(path: Path, name: str, desktop: dict[str, Any], steps: list[Compiled], *,
                 variables: dict[str, str] | None = None, secrets: list[str] | None = None,
                 task: str | None = None) -> Format:
    """Write the recording to ``path`` in its format; returns the format."""
    kind = output_format(path)
    if kind == "workflow":
        write_workflow(path, name, desktop, steps, variables=variables, secrets=secrets)
    elif kind == "pytest":
        path.write_text(pytest_source(name, desktop, steps, variables=variables, secrets=secrets), encoding="utf-8")
    else:
        if secrets:
            raise UsageError(f"--out {path.name}: an eval task's scripted replies would hold the value of "
                             f"{', '.join(secrets)}; write a workflow or a pytest file for a recording with secrets")
        write_suite_task(path, name, desktop, steps, variables=variables, task=task)
    return kind


def write_workflow(path: Path, name: str, desktop: dict[str, Any], steps: list[Compiled], *,
                   variables: dict[str, str] | None = None, secrets: list[str] | None = None) -> Path:
    """The workflow file: the desktop (size, apps, shares), the variables, the secrets' names, the steps."""
    body: dict[str, Any] = {"name": name, "desktop": desktop}
    if variables:
        body["vars"] = dict(variables)
    if secrets:
        body["secrets"] = list(secrets)
    body["steps"] = [c.step for c in steps]
    header = "# Recorded by `deskpilot record`: check with `deskpilot workflow check`, replay with `deskpilot workflow run`.\n"
    path.write_text(header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")
    return path


# -- pytest ---------------------------------------------------------------------------------------

_VAR = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _literal(text: str, variables: dict[str, str] | None = None, secrets: list[str] | None = None) -> str:
    """A Python expression for a workflow string: its {var}s become the test's variables (a secret: read from
    the environment by ``secret(NAME)``), {{ and }} single braces."""
    if not (variables or secrets) or not _VAR.search(text):
        return repr(text.replace("{{", "{").replace("}}", "}"))
    parts: list[str] = []
    plain, last = "", 0
    for match in _VAR.finditer(text):
        plain += text[last:match.start()]
        token, var = match.group(0), match.group(1)
        if var:
            parts += [repr(plain), f"secret({var!r})" if var in (secrets or []) else f"VARS[{var!r}]"]
            plain = ""
        else:
            plain += token[0]
        last = match.end()
    parts.append(repr(plain + text[last:]))
    return " + ".join(p for p in parts if p != "''") or "''"


def substitute(text: str, values: dict[str, str]) -> str:
    """A workflow string's value: {name} filled in, {{ and }} single braces (the workflow format's rule;
    a door does not import another door, so record keeps its own few lines of it)."""
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)) if m.group(1) else m.group(0)[0], text)


def _pixels(point: list[int], size: tuple[int, int]) -> tuple[int, int]:
    """A point in thousandths -> pixels, rounded as `workflow run` rounds it."""
    return (min(size[0] - 1, round(point[0] * size[0] / 1000)), min(size[1] - 1, round(point[1] * size[1] / 1000)))


def _pytest_line(step: dict[str, Any], size: tuple[int, int], variables: dict[str, str] | None,
                 secrets: list[str] | None = None) -> list[str]:
    lit = lambda text: _literal(str(text), variables, secrets)  # noqa: E731
    if "wait_for_window" in step:
        return [f"pilot.sandbox.wait_for_window({lit(step['wait_for_window'])}, timeout=60)", "pilot.settle()"]
    if "click" in step and isinstance(step["click"], dict):
        el = step["click"]
        exact = ", exact=True" if el.get("exact") else ""
        return [f"pilot.get_by_role({el['role']!r}, name={lit(el['name'])}{exact}).click(timeout=10)"]
    if "click" in step:
        x, y = _pixels(step["click"], size)
        if step.get("double"):
            return [f"pilot.double_click({x}, {y})"]
        button = step.get("button", "left")
        return [f"pilot.click({x}, {y})" if button == "left" else f"pilot.click({x}, {y}, button={button!r})"]
    if "click_text" in step:
        return [f"pilot.click_text({lit(step['click_text'])}, timeout=10)", "pilot.settle()"]
    if "type" in step:
        return [f"pilot.type({lit(step['type'])})"]
    if "key" in step:
        return [f"pilot.key({step['key']!r})"]
    if "scroll" in step:
        x, y = _pixels(step["scroll"], size)
        return [f"pilot.scroll({x}, {y}, direction={step['direction']!r}, amount={step['amount']})"]
    if "check" in step:
        return [f"pilot.check({_check_literal(step['check'], variables, secrets)})"]
    raise ValueError(f"no pytest line for step {step}")


def _check_literal(check: Any, variables: dict[str, str] | None, secrets: list[str] | None = None) -> str:
    if isinstance(check, dict):
        return "{" + ", ".join(f"{k!r}: {_check_literal(v, variables, secrets)}" for k, v in check.items()) + "}"
    if isinstance(check, list):
        return "[" + ", ".join(_check_literal(v, variables, secrets) for v in check) + "]"
    if isinstance(check, str):
        return _literal(check, variables, secrets)
    return repr(check)


def pytest_source(name: str, desktop: dict[str, Any], steps: list[Compiled], *,
                  variables: dict[str, str] | None = None, secrets: list[str] | None = None) -> str:
    """A pytest file that replays the steps on the plugin's ``desktop``/``pilot`` fixtures."""
    width, height = (int(v) for v in str(desktop["size"]).split("x"))
    apps = []
    for app in desktop.get("apps", []):
        words = shlex.split(app)
        apps.append("shlex.join([" + ", ".join(
            [repr(words[0])] + [f"str(HERE / {w!r})" if not os.path.isabs(w) and _looks_like_path(w) else repr(w)
                                for w in words[1:]]) + "])")
    shares = [repr(s) for s in desktop.get("shares", [])]
    body: list[str] = []
    for compiled in steps:
        body += _pytest_line(compiled.step, (width, height), variables, secrets)
    test = "test_" + (re.sub(r"\W+", "_", name).strip("_").lower() or "recorded")
    test = test if not test.startswith("test_test_") else test[5:]
    lines = [
        f'"""Recorded by `deskpilot record`: replays the demonstration {name!r} (run it with pytest)."""',
        "",
        *(["import os"] if secrets else []),
        "import shlex",
        "from pathlib import Path",
        "",
        "import pytest",
        "",
        "HERE = Path(__file__).parent",
        *([f"VARS = {dict(variables)!r}", ""] if variables else []),
        *(["", "def secret(name):",
           '    """A secret typed while recording: its value comes from the environment, never from this file."""',
           "    if name not in os.environ:",
           '        pytest.fail(f"set the environment variable {name} (a secret typed while recording)", pytrace=False)',
           "    return os.environ[name]", ""] if secrets else []),
        "",
        f"@pytest.mark.desktop(size=({width}, {height}), apps=[{', '.join(apps)}], shares=[{', '.join(shares)}])",
        f"def {test}(pilot):",
        *[f"    {line}" for line in body or ["pass"]],
        "",
    ]
    return "\n".join(lines)


def _looks_like_path(word: str) -> bool:
    return "/" in word or "." in word and not word.startswith("-")


# -- eval suites ----------------------------------------------------------------------------------


def _quote(text: str) -> str:
    """A GLM-4.5V call argument: single-quoted, with backslash, quote and newline escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _reply(call: str, thought: str) -> str:
    return f"{thought}\n<|begin_of_box|>{call}<|end_of_box|>\nMemory:\n[]"


def script_replies(steps: list[Compiled], variables: dict[str, str] | None = None) -> list[str]:
    """The demonstration as GLM-4.5V replies: what a model would answer, step by step, then DONE()."""
    values = dict(variables or {})
    replies = []
    for compiled in steps:
        step = compiled.step
        if compiled.point is not None and ("click" in step or "click_text" in step):
            point = compiled.point
            x, y = point["click"]
            button = point.get("button", "left")
            call = "left_double_click" if point.get("double") else f"{button}_click"
            replies.append(_reply(f"{call}(start_box='[{x},{y}]')", f"I click as the demonstration did ({_what(step)})."))
        elif "type" in step:
            replies.append(_reply(f"type(content={_quote(substitute(step['type'], values))})", "I type the text."))
        elif "key" in step:
            replies.append(_reply(f"key(keys={_quote(step['key'])})", f"I press {step['key']}."))
        elif "scroll" in step:
            x, y = step["scroll"]
            replies.append(_reply(f"scroll(start_box='[{x},{y}]', direction='{step['direction']}', step={step['amount']})",
                                  f"I scroll {step['direction']} as the demonstration did."))
    return replies + [_reply("DONE()", "The demonstration is done.")]


def _what(step: dict[str, Any]) -> str:
    if "click_text" in step:
        return f"on {step['click_text']!r}"
    if isinstance(step.get("click"), dict):
        return f"on {step['click'].get('role')} {step['click'].get('name')!r}"
    return "at the same point"


def suite_task(name: str, desktop: dict[str, Any], steps: list[Compiled], *,
               variables: dict[str, str] | None = None, task: str | None = None) -> dict[str, Any]:
    """One eval task: the desktop, the first window as ``ready``, scripted replies, the recorded checks."""
    values = dict(variables or {})
    replies = script_replies(steps, variables)
    checks: list[dict[str, Any]] = []
    for compiled in steps:
        if "check" in compiled.step:
            found = compiled.step["check"]
            checks += [json.loads(substitute(json.dumps(c), values))  # a suite's checks have no {var}s
                       for c in (found if isinstance(found, list) else [found])]
    first = next((c.step["wait_for_window"] for c in steps if "wait_for_window" in c.step), None)
    out: dict[str, Any] = {"id": re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:80] or "recorded",
                           "task": task or f"Do what the recorded demonstration {name!r} did",
                           "desktop": desktop, "max_steps": len(replies) + 2}
    if first:
        out["ready"] = {"window": first}
    out["script"] = replies
    out["checks"] = checks
    return out


def load_suite_file(path: Path) -> dict[str, Any]:
    """The suite already at ``path`` (its tasks kept), or a new one; UsageError if it is not a suite."""
    if not path.exists() or not path.read_text(encoding="utf-8").strip():
        return {"name": path.stem, "tasks": []}
    text = path.read_text(encoding="utf-8")
    try:
        loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise UsageError(f"--out {path}: the suite there cannot be read ({err}); give a new file") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("tasks"), list):
        raise UsageError(f"--out {path}: that file is not an eval suite (no tasks list); give a new file")
    return loaded


def prepare_output(path: Path) -> Format:
    """Check ``--out`` before recording (a mistake found after the demonstration would waste it)."""
    kind = output_format(path)
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: the folder {path.parent} does not exist")
    if kind == "suite":
        load_suite_file(path)
    return kind


def write_suite_task(path: Path, name: str, desktop: dict[str, Any], steps: list[Compiled], *,
                     variables: dict[str, str] | None = None, task: str | None = None) -> Path:
    """Add the task to the suite at ``path`` (replacing one with the same id), or write a new suite."""
    entry = suite_task(name, desktop, steps, variables=variables, task=task)
    as_json = path.suffix.lower() == ".json"
    suite = load_suite_file(path)
    suite["tasks"] = [t for t in suite["tasks"] if not (isinstance(t, dict) and t.get("id") == entry["id"])] + [entry]
    if as_json:
        path.write_text(json.dumps(suite, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        path.write_text("# Recorded by `deskpilot record`: run with `deskpilot eval`.\n"
                        + yaml.safe_dump(suite, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")
    return path
