#!/usr/bin/env bash
# Check the import contracts in pyproject.toml ([tool.importlinter]) against the installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/installed-copy.sh
# lint-imports puts the working directory first on sys.path: run it from the installed copy.
root="$PWD"
cd build/installed && PYTHONPATH="$PWD" "$root/.venv/bin/lint-imports" --no-cache "$root/pyproject.toml"
