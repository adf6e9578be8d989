"""`python -m deskpilot.agent.cli` is the `deskpilot` command."""

from deskpilot.agent.cli import main

main()
