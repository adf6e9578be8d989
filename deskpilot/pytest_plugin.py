"""pytest plugin (entry point ``pytest11``): UI tests on a fresh sandboxed desktop per test.

Fixtures:

- ``desktop``: a ``deskpilot.Sandbox`` started for the test and closed after
  it. ``@pytest.mark.desktop(size=(1280, 800), apps=["xterm"], shares=[...])``
  sets it up; every test also gets its own shared folder (``desktop_share``),
  bound read-write, and ``{share}`` in an app command is replaced by its path.
- ``pilot``: an agent bound to that desktop. ``pilot.do(task)`` runs the model
  and fails the test unless the run ends DONE (PASSED with ``checks=``);
  ``pilot.do(task, cache="cache/NAME.json")`` replays cached steps while the
  screen matches. ``pilot.expect(statement)`` (the model judges),
  ``pilot.expect_text(text)`` / ``pilot.click_text(text)`` / ``pilot.find_text``
  (the accessibility tree first, else OCR; no model), ``pilot.check(...)`` (any
  check), ``pilot.locate(...)``; the desktop's own ``click``, ``type``, ``key``,
  ``screenshot`` and its locators (``pilot.get_by_role("button", name="Save")``)
  pass through, and ``from deskpilot import expect`` gives Playwright's
  ``expect(locator).to_have_text(...)`` / ``to_be_enabled()`` / ``to_be_checked()`` /
  ``to_have_count(n)``, retried until a timeout.

The model comes from ``--deskpilot-base-url`` / ``--deskpilot-model`` or
``--deskpilot-script FILE`` (recorded replies; a folder holds one
``TESTNAME.json`` per test), or the ``DESKPILOT_BASE_URL``, ``DESKPILOT_MODEL``,
``DESKPILOT_API_KEY``, ``DESKPILOT_SCRIPT`` environment variables. Each test's
runs go to its own folder (``--deskpilot-runs DIR``, default the test's
tmp_path), so pytest-xdist workers never share a display or a folder. A failure
names the run folder, its report.html and the last screenshot; the same paths
are junitxml properties. A failed ``expect_text``, ``click_text`` or ``check``
saves the screen it failed on (and the OCR lines or diff it used) into that
folder and names the files the same way (``deskpilot_failure_screenshot``,
``deskpilot_failure_ocr_text``, ``deskpilot_failure_diff``). Tracebacks stop at
the test's own line: deskpilot's frames are hidden. A test that calls
``pilot.do/expect/ask/locate`` with no model given is a usage error found
at collection, before any desktop starts.
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

_MARKER = "desktop(size=(1280, 800), apps=[...], shares=[...], isolation='bwrap', network=False): the deskpilot sandbox for the desktop fixture"
_RUNS_KEY = pytest.StashKey[list]()
_NO_MODEL_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deskpilot", "deskpilot desktop UI tests")
    group.addoption("--deskpilot-base-url", default=None, help="OpenAI-compatible model server for the pilot fixture")
    group.addoption("--deskpilot-model", default=None, help="served model name [default: glm-4.5v]")
    group.addoption("--deskpilot-script", default=None,
                    help="recorded replies instead of a model: a JSON file, or a folder with TESTNAME.json per test")
    group.addoption("--deskpilot-runs", default=None, help="folder for run folders [default: each test's tmp_path]")
    group.addoption("--deskpilot-update-baselines", action="store_true", default=False,
                    help="screenshot checks with a missing or different baseline write the current screen as it")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER)
    if config.getoption("--deskpilot-update-baselines", default=False):
        from deskpilot.agent.checks.context import UPDATE_ENV

        os.environ[UPDATE_ENV] = "1"  # every check context reads it (xdist workers inherit it)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "test"


def run_name(count: int, what: str) -> str:
    """``01-Compute_6_times_7_with_the_calculator``: numbered, cut, no trailing dot."""
    from deskpilot.agent.records.rundir import trim_name

    return f"{count:02d}-{trim_name(_slug(what)[:40]) or 'test'}"


@pytest.fixture
def desktop_share(tmp_path: Path) -> Path:
    """A folder of this test's own, bound read-write into its desktop (``{share}`` in app commands)."""
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    return share


@pytest.fixture
def desktop(request: pytest.FixtureRequest, desktop_share: Path):
    """A fresh ``deskpilot.Sandbox`` for this test (see ``@pytest.mark.desktop``), closed after it."""
    from deskpilot.agent.desk.session import Session

    marker = request.node.get_closest_marker("desktop")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    if marker and marker.args:
        raise pytest.UsageError("@pytest.mark.desktop takes keywords only: size=, apps=, shares=, isolation=, network=")
    unknown = set(options) - {"size", "apps", "shares", "isolation", "network"}
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.desktop got unknown option(s) {', '.join(sorted(unknown))}")
    apps = options.pop("apps", [])
    apps = [apps] if isinstance(apps, str) else list(apps)
    apps = [a.replace("{share}", str(desktop_share)) if isinstance(a, str) else a for a in apps]
    base = Path(request.path).parent
    shares = [desktop_share] + [p if Path(p).is_absolute() else base / p for p in options.pop("shares", [])]
    from deskpilot.errors import DeskpilotError

    try:
        session = Session(size=options.pop("size", (1280, 800)), apps=apps, shares=shares, create_shares=True,
                          **options)
    except DeskpilotError as err:  # one line in the test's setup ERROR, not deskpilot's start-up frames
        problem = str(err)
    else:
        problem = ""
    if problem:
        pytest.fail(f"the desktop did not start: {problem}", pytrace=False)
    with session as desk:
        yield desk


_NO_MODEL = ("the pilot fixture needs a model: --deskpilot-base-url URL or --deskpilot-script FILE "
             "(or DESKPILOT_BASE_URL / DESKPILOT_SCRIPT)")
_MODEL_METHODS = {"do", "expect", "ask", "locate"}  # the pilot methods that call the model


def _model_problem(config: pytest.Config, node: pytest.Item) -> str | None:
    """The one-line reason this test has no model to call; None when recorded replies or a server are given."""
    script = config.getoption("deskpilot_script") or os.environ.get("DESKPILOT_SCRIPT")
    if script:
        path = Path(script)
        if path.is_dir():
            path = path / f"{_slug(node.name)}.json"
        return None if path.is_file() else f"no recorded replies for {node.name}: {path} does not exist"
    if config.getoption("deskpilot_base_url") or os.environ.get("DESKPILOT_BASE_URL"):
        return None
    return _NO_MODEL


def _backend(config: pytest.Config, node: pytest.Item):
    from deskpilot.errors import UsageError
    from deskpilot.model_backend import OpenAICompatibleBackend, ScriptedBackend

    problem = _model_problem(config, node)
    if problem:
        raise UsageError(problem)
    script = config.getoption("deskpilot_script") or os.environ.get("DESKPILOT_SCRIPT")
    if script:
        path = Path(script)
        return ScriptedBackend.from_file(path / f"{_slug(node.name)}.json" if path.is_dir() else path)
    base_url = config.getoption("deskpilot_base_url") or os.environ.get("DESKPILOT_BASE_URL")
    model = config.getoption("deskpilot_model") or os.environ.get("DESKPILOT_MODEL") or "glm-4.5v"
    return OpenAICompatibleBackend(base_url, model, api_key=os.environ.get("DESKPILOT_API_KEY"))


def _calls_the_model(item: pytest.Item) -> bool:
    """Whether the test's own body calls pilot.do/expect/ask/locate (read with ast; helpers are not followed)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(item, "obj"))))
    except (AttributeError, OSError, TypeError, SyntaxError):
        return False
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in _MODEL_METHODS
               and isinstance(n.func.value, ast.Name) and n.func.value.id == "pilot" for n in ast.walk(tree))


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only the tests that will run need a model
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs a model and has none is a usage error now, not a FAILED test after its desktop started.

    An xdist worker cannot stop the session (its controller would crash): there the
    test errors in setup with the same one line, still before its desktop starts.
    """
    for item in items:
        if "pilot" in getattr(item, "fixturenames", ()) and _calls_the_model(item):
            problem = _model_problem(config, item)
            if problem and hasattr(config, "workerinput"):
                item.stash[_NO_MODEL_KEY] = problem
            elif problem:
                raise pytest.UsageError(f"{item.nodeid}: {problem}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    problem = item.stash.get(_NO_MODEL_KEY, None)
    if problem:
        pytest.fail(f"usage error: {problem}", pytrace=False)


def _clean(method):
    """Run a pilot method so a deskpilot error's traceback starts at the test's line, not in deskpilot."""

    @functools.wraps(method)
    def call(*args, **kwargs):
        __tracebackhide__ = True
        from deskpilot.errors import DeskpilotError

        try:
            return method(*args, **kwargs)
        except DeskpilotError as err:
            raise err.with_traceback(None) from None

    return call


class Pilot:
    """An agent bound to one test's desktop; every failure is an AssertionError naming the run folder."""

    def __init__(self, desktop, node: pytest.Item, runs: Path, base: Path):
        self.desktop = desktop
        self.node = node
        self.runs = runs
        self.base = base  # relative cache and file paths are resolved against the test file's folder
        self._backend = None
        self._queries = None
        self._count = 0
        self._checks = 0
        self._failures = 0
        self.results: list = []

    # -- the model ------------------------------------------------------------------------
    @property
    def backend(self):
        if self._backend is None:
            self._backend = _backend(self.node.config, self.node)
        return self._backend

    def _run_dir(self, what: str) -> Path:
        self._count += 1
        return self.runs / run_name(self._count, what)

    @_clean
    def do(self, task: str, *, cache: str | os.PathLike | None = None, checks: Any = (),
           max_steps: int = 30, **loop: Any):
        """Run the agent on ``task``; fail the test unless it ends DONE (PASSED with checks)."""
        __tracebackhide__ = True
        from deskpilot.agent.records.cache import RunCache
        from deskpilot.agent.checks import parse_checks
        from deskpilot.agent.loop.agent import Agent, LoopSettings
        from deskpilot.agent.loop.policy import Policy
        from deskpilot.errors import CheckFailed

        run_dir = self._run_dir(task)
        run_cache = None
        if cache is not None:
            path = Path(cache)
            run_cache = RunCache(path if path.is_absolute() else self.base / path, task)
        with Agent(self.backend, self.desktop, run_dir=run_dir, policy=Policy(max_steps=max_steps),
                   settings=LoopSettings(**loop), checks=parse_checks(list(checks)), check_base=self.base,
                   cache=run_cache) as agent:
            result = agent.run(task)
        self.results.append(result)
        _note(self.node, result)
        if not result.ok:
            raise CheckFailed(failure_message(result), evidence=result.run_dir)
        return result

    def _query_agent(self):
        if self._queries is None:
            from deskpilot.agent.loop.agent import Agent

            self._queries = Agent(self.backend, self.desktop, run_dir=self.runs / "queries", report=False)
        return self._queries

    @_clean
    def locate(self, description: str) -> tuple[int, int, int, int]:
        """The model's pixel box for what ``description`` names on the current screen."""
        return self._query_agent().locate(description)

    @_clean
    def ask(self, question: str) -> str:
        return self._query_agent().ask(question)

    # -- checks -----------------------------------------------------------------------------
    @_clean
    def check(self, *checks: Any) -> list:
        """Run checks (the one check syntax) on the settled screen; fail the test if any fails.

        A failure saves the frame the checks saw (and the OCR lines and diff
        images they used) into the run folder's ``checks/`` and names them.
        """
        __tracebackhide__ = True
        from deskpilot.agent.checks import CheckContext, failure_summary, run_checks
        from deskpilot.agent.checks.evidence import save_check_failure
        from deskpilot.errors import CheckFailed

        self.desktop.settle()
        needs_model = any(isinstance(c, dict) and "expect" in c for c in checks)
        self._checks += 1
        ctx = CheckContext(base_dir=self.base, screen=self.desktop.screenshot, sandbox=self.desktop,
                           ask=self.ask if needs_model else None, out_dir=self.runs / "checks",
                           prefix=f"check{self._checks:02d}")
        results = run_checks(checks, ctx)
        summary = failure_summary(results)
        if summary:
            evidence = save_check_failure(ctx, results, self.runs / "checks", f"check{self._checks:02d}_failed")
            self._name_evidence(evidence)
            raise CheckFailed(f"{summary}\n{evidence.describe()}", evidence=[r.model_dump() for r in results])
        return results

    def expect(self, statement: str) -> None:
        """The model must agree with ``statement`` about the current screen."""
        __tracebackhide__ = True
        self.check({"expect": statement})

    @_clean
    def expect_text(self, text: str, *, timeout: float = 5.0, region=None) -> list:
        """``text`` must show within ``timeout`` seconds (the tree first, else OCR; it looks again only when
        the screen changed, so a still screen is read once); returns its boxes."""
        __tracebackhide__ = True
        from deskpilot.perception.ocr import wait_for_text

        return self._ocr_step("expect_text", wait_for_text, text, timeout=timeout, region=region)

    @_clean
    def find_text(self, text: str, *, region=None) -> list:
        from deskpilot.perception.ocr import find_text

        return find_text(self.desktop, text, region=region)

    @_clean
    def click_text(self, text: str, *, timeout: float = 5.0, index: int = 0, region=None):
        """Click the middle of ``text`` (found by OCR, no model)."""
        __tracebackhide__ = True
        from deskpilot.perception.ocr import click_text

        return self._ocr_step("click_text", click_text, text, timeout=timeout, index=index, region=region)

    def _ocr_step(self, what: str, step, text: str, **options: Any):
        """An OCR step; when it fails, the frame it read and the lines it found are saved and named."""
        __tracebackhide__ = True
        from deskpilot.agent.checks.evidence import ocr_lines_of, save_failure_evidence
        from deskpilot.errors import CheckFailed

        try:
            return step(self.desktop, text, **options)
        except CheckFailed as err:
            self._failures += 1
            frame = err.screen if err.screen is not None else self.desktop.screenshot
            evidence = save_failure_evidence(self.runs, f"{what}{self._failures:02d}_failed", screen=frame,
                                             lines=ocr_lines_of(err.evidence))
            self._name_evidence(evidence)
            raise CheckFailed(f"{err}\n{evidence.describe()}", evidence=err.evidence, screen=err.screen) from None

    def _name_evidence(self, evidence) -> None:
        """The failure's files as junitxml properties (deskpilot_failure_screenshot, ..._ocr_text, ..._diff)."""
        self.node.user_properties.extend((f"deskpilot_failure_{name}", path) for name, path in evidence.files().items())

    # -- the desktop's own actions ---------------------------------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self.desktop, name)  # click, type, key, screenshot, scroll, drag, ...
        return _clean(attribute) if callable(attribute) else attribute

    def close(self) -> None:
        if self._queries is not None:
            self._queries.close()
        if self._backend is not None:
            self._backend.close()


def failure_message(result) -> str:
    """Why a run failed, and where to look: run folder, report, last screenshot."""
    run_dir = Path(result.run_dir)
    lines = [f"deskpilot run ended {result.status.value} after {result.steps} step(s)"
             + (f": {result.reason}" if result.reason else ""),
             f"  run folder: {run_dir}", f"  report: {run_dir / 'report.html'}"]
    if result.final_screenshot:
        lines.append(f"  last screenshot: {result.final_screenshot}")
    return "\n".join(lines)


def _note(node: pytest.Item, result) -> None:
    """junitxml properties and the terminal section for this run."""
    run_dir = Path(result.run_dir)
    props = [("deskpilot_run", str(run_dir)), ("deskpilot_report", str(run_dir / "report.html")),
             ("deskpilot_status", result.status.value)]
    if result.final_screenshot:
        props.append(("deskpilot_last_screenshot", result.final_screenshot))
    if "model_calls_saved" in result.totals:
        props.append(("deskpilot_model_calls_saved", str(result.totals["model_calls_saved"])))
    node.user_properties.extend(props)
    node.stash.setdefault(_RUNS_KEY, []).append(result)


@pytest.fixture
def pilot(request: pytest.FixtureRequest, desktop, tmp_path: Path):
    """An agent bound to the ``desktop`` fixture's sandbox (see the module docstring)."""
    option = request.config.getoption("deskpilot_runs")
    runs = Path(option) / _slug(request.node.nodeid) if option else tmp_path / "deskpilot"
    runs.mkdir(parents=True, exist_ok=True)
    p = Pilot(desktop, request.node, runs, Path(request.path).parent)
    try:
        yield p
    finally:
        p.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    results = item.stash.get(_RUNS_KEY, [])
    if report.when == "call" and report.failed and results:
        text = "\n\n".join(failure_message(r) for r in results)
        report.sections.append(("deskpilot runs", text))
    return report
