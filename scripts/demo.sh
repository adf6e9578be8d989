#!/usr/bin/env bash
# Install everything, then run the demo: the agent fills and saves a form in a sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
DESKPILOT_EXTRAS="${DESKPILOT_EXTRAS:-dev}" bash scripts/setup.sh
exec .venv/bin/deskpilot demo "$@"
