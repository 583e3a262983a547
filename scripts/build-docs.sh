#!/usr/bin/env bash
# Build the documentation site (mkdocs.yml, docs/site/) into build/site, with --strict: a broken link,
# page or API reference fails. The API reference is read from a regular (non-editable) install of the
# package in build/docs-src, where kubesage.runners etc. sit inside kubesage/ as on a user's machine
# (in the tree they are top-level folders mapped by setuptools' package-dir; see lint-imports.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
target=build/docs-src
rm -rf "$target"
uv pip install --quiet --no-deps --target "$target" . >/dev/null 2>&1 \
    || { echo "build-docs: could not build the package into $target" >&2; exit 1; }
rm -rf build/lib build/bdist.* *.egg-info 2>/dev/null || true
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet "$@"
echo "docs: built build/site/index.html"
