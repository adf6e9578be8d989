"""Verified outcomes: checks that look at files and the screen, not at the model's word.

One syntax everywhere (config files, CLI flags, pytest, workflows, eval
suites): a check is a plain object whose keys say what it is::

    {file: out.csv, exists: true}          {file: notes.txt, contains: "Total"}
    {file: log.txt, regex: "saved \\d+"}   {file: data.json, json: {path: "a.b[0]", equals: 3}}
    {file: t.csv, csv_cell: {row: 2, col: "Total", equals: 42}}
    {file: t.xlsx, xlsx_cell: {sheet: Sheet1, cell: B14, equals: 42}}   (.ods too)
    {file: r.pdf, pdf_contains: "Invoice"}
    {text_visible: "Saved", region: [x1, y1, x2, y2]}   {text_absent: "Error"}
    {window_title: "Mousepad", focused: true}
    {screenshot_matches: base.png, tolerance: 0.0, max_region: 10, masks: [[x1, y1, x2, y2]]}
    {expect: "the dialog says the file was saved"}       (the model judges, yes/no + reason)
    {element: {role: button, name: Save}, state: enabled}    (the accessibility tree: state, text, value, count)

Any check may carry ``name: "..."`` as its label.

The public surface, for other modules:

- ``Check``: the pydantic type of any check (a discriminated union), for fields
  of other models; ``parse_check(obj)`` / ``parse_checks(list)`` turn plain
  objects into checks with one-line ``ConfigError`` messages.
- ``CheckContext``: what checks may use (base folder, settled screen, sandbox,
  model ``ask``, output folder for diff images, a ``record`` callback).
- ``run_checks(checks, ctx) -> list[CheckResult]``: runs all of them on one
  settled frame (OCR read once); ``CheckResult`` has passed, message, evidence.
- ``failure_summary(results)``: '' or one line naming the failed checks.
- ``compare`` / ``ImageDiff``: the screenshot diff (also used by replay).
- ``expect_file_flag("PATH:contains:TEXT")``: the CLI shorthand.
"""

from deskpilot.agent.checks.context import CheckContext
from deskpilot.agent.desk.diff import ImageDiff, compare, diff_image
from deskpilot.agent.checks.models import Check, expect_file_flag, kind_of, parse_check, parse_checks
from deskpilot.agent.checks.runner import CheckResult, failure_summary, run_check, run_checks

__all__ = [
    "Check", "CheckContext", "CheckResult", "ImageDiff", "compare", "diff_image", "expect_file_flag",
    "failure_summary", "kind_of", "parse_check", "parse_checks", "run_check", "run_checks",
]
