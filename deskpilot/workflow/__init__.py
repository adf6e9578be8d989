"""Workflow files: one YAML file mixes deterministic steps and agent tasks on one desktop.

``load_workflow(path)`` reads and validates a file (pydantic, errors name the
line); ``run_workflow(flow, ...)`` runs it in one sandbox (or one per CSV row
for a ``foreach`` that asks for it), records everything in one run folder and
writes one report. See ``spec.py`` for the file format.
"""

from deskpilot.workflow.loader import WorkflowError, load_workflow, parse_workflow
from deskpilot.workflow.runner import WorkflowResult, run_workflow
from deskpilot.workflow.spec import Workflow

__all__ = ["Workflow", "WorkflowError", "WorkflowResult", "load_workflow", "parse_workflow", "run_workflow"]
