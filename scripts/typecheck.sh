#!/usr/bin/env bash
# mypy over the installed copy, where `kubesage.runners.x` resolves to runners/x.py: run on the
# source tree, mypy cannot map those imports to their folders and treats them as Any. Paths in its
# report are mapped back to the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/installed-copy.sh
root="$PWD"
cd build/installed
status=0
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" --cache-dir "$root/.mypy_cache/installed" -p kubesage \
    > "$root/build/mypy.txt" 2>&1 || status=$?
sed -E 's#^kubesage/(components|pipelines|runners)/#\1/#' "$root/build/mypy.txt"
exit "$status"
