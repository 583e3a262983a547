#!/usr/bin/env bash
# The package as a user installs it, in build/installed: components/, pipelines/ and runners/ sit
# under kubesage/ there (setuptools package-dir). An editable install maps them with an import hook
# that neither import-linter's file-system walk nor mypy's module finder sees, so both check this copy.
set -euo pipefail
cd "$(dirname "$0")/.."
target=build/installed
rm -rf "$target"
uv pip install --quiet --no-deps --target "$target" . >/dev/null 2>&1 \
    || { echo "installed-copy: could not build the package into $target" >&2; exit 1; }
rm -rf build/lib build/bdist.* *.egg-info 2>/dev/null || true
