"""The eval runner's hooks for an OSWorld task: set-up before the agent, postconfig before the checks, the verdict.

OSWorld's rules kept here: an ``infeasible`` task passes only when the
agent's last action is FAIL; any other task fails on FAIL (the agent gave
up), and its checks run after the evaluator's postconfig (e.g. activate the
window, press ctrl+s). A task passes when its OSWorld score would be 1.0.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

from deskpilot.eval.osworld import steps as st
from deskpilot.eval.osworld.plan import Plan

PLATFORM = "Ubuntu"  # the official GLM-4.5V desktop agent's platform line for OSWorld
OSWORLD_LIBREOFFICE = "7.3"  # the version in OSWorld's VM images


def setup(desk, plan: Plan, run_dir: Path) -> None:
    """The task's set-up steps on a ready desk; on failure the screen is kept as evidence and named."""
    for n, step in enumerate(plan.setup, 1):
        try:
            st.perform(desk, step)
        except Exception as err:
            shot = run_dir / "setup_failed.png"
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                desk.screenshot(shot)
                seen = f" (screen: {shot})"
            except Exception:
                seen = ""
            from deskpilot.errors import SandboxError

            raise SandboxError(f"OSWorld set-up step {n} ({step.describe()}) failed: {err}{seen}") from None


def postconfig(desk, plan: Plan, checks: list[dict[str, Any]]) -> None:
    """The evaluator's postconfig, then (after a save key press) a wait until the result files were written."""
    files = [str(desk.host_path(c["file"])) for c in _flat(checks) if "file" in c]
    before = st.mtimes(files)
    saves = False
    for step in plan.postconfig:
        st.perform(desk, step)
        saves = saves or (step.kind == "keys" and step.keys.replace(" ", "").lower() in ("ctrl+s", "ctrl+shift+s"))
    if saves and files:
        st.wait_saved(before)


def _flat(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in checks:
        out.extend(_flat(c["any_of"]) if "any_of" in c else [c])
    return out


def before_checks(desk, plan: Plan, checks: list[dict[str, Any]]):
    """What the Agent calls after DONE, before it runs the checks (agent.checks.runner.verify_run)."""
    return functools.partial(postconfig, desk, plan, checks)


def use_platform(dialect) -> None:
    """The run prompt's platform line is Ubuntu for OSWorld tasks, whatever the configured dialect says."""
    options = getattr(dialect, "options", None)
    if options is not None and hasattr(options, "platform"):
        options.platform = PLATFORM


def verdict(plan: Plan, status: str, reason: str, checks_ok: bool) -> tuple[str, bool, str]:
    """(status, passed, reason) of an OSWorld attempt from the agent's end status."""
    if plan.infeasible:
        if status == "FAIL":
            return "PASSED", True, "infeasible task: the agent answered FAIL"
        return "FAILED", False, f"infeasible task: only FAIL passes (the run ended {status})"
    return status, status in ("DONE", "PASSED") and checks_ok, reason


@functools.lru_cache(maxsize=1)
def libreoffice_version() -> str:
    """The LibreOffice on this machine (`soffice --version`), '' if none."""
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if exe is None:
        return ""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    parts = out.split()
    return parts[1] if len(parts) > 1 and parts[0] == "LibreOffice" else out.strip()[:60]


def summary_info() -> dict[str, Any]:
    """What summary.json says about an OSWorld run: the platform line and the app versions."""
    version = libreoffice_version()
    note = (f"OSWorld's VM images use LibreOffice {OSWORLD_LIBREOFFICE}; this machine has {version or 'none'}"
            + (" (Debian 12 ships 7.4): menus, dialogs and file output may differ slightly" if version else ""))
    return {"platform": PLATFORM, "apps": {"libreoffice": version, "libreoffice_osworld": OSWORLD_LIBREOFFICE},
            "note": note}
