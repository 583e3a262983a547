#!/usr/bin/env bash
# Check the import contracts in pyproject.toml ([tool.importlinter]).
# components/, pipelines/ and runners/ install as kubesage.components etc. through setuptools'
# package-dir, which an editable install maps with an import hook that import-linter's file-system
# walk does not see. So the contracts are checked against a regular (non-editable) install of the
# package into build/import-graph.
set -euo pipefail
cd "$(dirname "$0")/.."
target=build/import-graph
rm -rf "$target"
uv pip install --quiet --no-deps --target "$target" . >/dev/null 2>&1 \
    || { echo "lint-imports: could not build the package into $target" >&2; exit 1; }
rm -rf build/lib build/bdist.* *.egg-info 2>/dev/null || true
# lint-imports puts the working directory first on sys.path: run it from the installed copy.
root="$PWD"
cd "$target" && PYTHONPATH="$PWD" "$root/.venv/bin/lint-imports" --no-cache "$root/pyproject.toml"
