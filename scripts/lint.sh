#!/usr/bin/env bash
# ruff and mypy on the package, as installed: the five folders are checked
# under their real names (deskpilot.agent, ...) through a tree of symlinks.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin
echo "==> ruff"
"$PY/ruff" check deskpilot agent actions perception model_backend sandbox tests bench || exit 1
echo "==> mypy"
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/deskpilot"
for f in deskpilot/*; do ln -s "../../../$f" "$tree/deskpilot/"; done
for p in agent actions perception model_backend sandbox; do ln -s "../../../$p" "$tree/deskpilot/$p"; done
(cd "$tree" && "../../$PY/mypy" --config-file ../../pyproject.toml --cache-dir ../mypy-cache -p deskpilot)
