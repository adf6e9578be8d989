"""`python -m deskpilot.cli` is the `deskpilot` command."""

from deskpilot.cli import main

main()
