#!/usr/bin/env bash
# Build the wheelhouse the image installs from (containers cannot reach PyPI):
#   build/wheelhouse/requirements.txt   runtime dependencies pinned by uv.lock (no dev extras), the
#                                       complete closure, so the image installs them with --no-deps
#   build/wheelhouse/deps/*.whl         one wheel per requirement, for this machine's CPython 3.11/glibc
#   build/wheelhouse/project/*.whl      the kubesage wheel itself
# Each part is rebuilt only when its inputs changed (the lock; the package sources), so a warm
# `make image` neither downloads nor rebuilds anything and docker's layer cache stays valid.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
WHEELHOUSE="$BUILD_DIR/wheelhouse"
PYTHON="${WHEELHOUSE_PYTHON:-python3}"
cd "$ROOT"

log() { printf '[wheelhouse] %s\n' "$*" >&2; }

mkdir -p "$WHEELHOUSE/deps" "$WHEELHOUSE/project"

# The image's Python is Debian bookworm's 3.11 on glibc 2.36; wheels must match that ABI.
"$PYTHON" - <<'PY' || { log "need CPython 3.11 on Linux x86_64 to build the wheelhouse"; exit 1; }
import platform, sys
ok = sys.version_info[:2] == (3, 11) and platform.system() == "Linux" and platform.machine() == "x86_64"
sys.exit(0 if ok else 1)
PY

# 1. Runtime requirements from the lock. The image is CPU-only: NCCL (xgboost's multi-GPU collective
# library, a 350 MB wheel) is left out; nothing imports it unless a GPU is used.
EXCLUDE_RE='^(nvidia-nccl-cu12)=='
REQS="$WHEELHOUSE/requirements.txt"
uv export --frozen --no-dev --no-hashes --no-emit-project --no-header --format requirements-txt 2>/dev/null \
    | grep -vE '^[[:space:]]*#' | grep -vE "$EXCLUDE_RE" >"$REQS.new"
mv "$REQS.new" "$REQS"
reqs_sum="$(sha256sum "$REQS" | cut -d' ' -f1)"
if [[ -f "$WHEELHOUSE/deps/.stamp" && "$(cat "$WHEELHOUSE/deps/.stamp")" == "$reqs_sum" ]]; then
    log "dependency wheels up to date ($(find "$WHEELHOUSE/deps" -name '*.whl' | wc -l) wheels)"
else
    log "building dependency wheels"
    # Drop wheels from an older lock so the image cannot pick a stale version.
    find "$WHEELHOUSE/deps" -name '*.whl' -delete
    # `pip wheel` takes binary wheels as they are and builds the odd sdist-only package on the host,
    # where compilers may live, so the image never needs one.
    # (The grep drops pip's noise about find-links folders that a machine's pip.conf may name.)
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps \
        --wheel-dir "$WHEELHOUSE/deps" --requirement "$REQS" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    printf '%s\n' "$reqs_sum" >"$WHEELHOUSE/deps/.stamp"
    log "$(find "$WHEELHOUSE/deps" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE/deps" | cut -f1)"
fi

# 2. The project wheel, rebuilt only when a packaged source changed.
src_sum="$( (sha256sum pyproject.toml; find kubesage components pipelines runners -type f \
    -not -path '*/__pycache__/*' -not -name '*.pyc' | LC_ALL=C sort | xargs -r sha256sum) | sha256sum | cut -d' ' -f1)"
if [[ -f "$WHEELHOUSE/project/.stamp" && "$(cat "$WHEELHOUSE/project/.stamp")" == "$src_sum" ]] \
    && compgen -G "$WHEELHOUSE/project/kubesage-*.whl" >/dev/null; then
    log "kubesage wheel up to date"
else
    log "building the kubesage wheel"
    find "$WHEELHOUSE/project" -name '*.whl' -delete
    # A fixed timestamp keeps the wheel byte-identical for identical sources.
    SOURCE_DATE_EPOCH=315532800 uv build --wheel --quiet --out-dir "$WHEELHOUSE/project" >/dev/null 2>&1 \
        || SOURCE_DATE_EPOCH=315532800 uv build --wheel --out-dir "$WHEELHOUSE/project"
    rm -rf "$ROOT/build/lib" "$ROOT/build/bdist."*
    printf '%s\n' "$src_sum" >"$WHEELHOUSE/project/.stamp"
    log "$(basename "$(compgen -G "$WHEELHOUSE/project/kubesage-*.whl")")"
fi
