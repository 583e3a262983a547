#!/usr/bin/env bash
# Build the wheelhouse the image installs from (containers cannot reach PyPI):
#   build/wheelhouse/locked.txt         runtime dependencies pinned by uv.lock with its sha256 hashes (no dev
#                                       extras), the complete closure; `pip wheel --require-hashes` checks
#                                       every download against them
#   build/wheelhouse/deps/*.whl         one wheel per requirement, for this machine's CPython 3.11/glibc
#   build/wheelhouse/requirements.txt   those wheels pinned by their own sha256, so the image installs them
#                                       with --require-hashes --no-deps
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
REQS="$WHEELHOUSE/locked.txt"
uv export --frozen --no-dev --no-emit-project --no-emit-package nvidia-nccl-cu12 --no-header \
    --format requirements-txt 2>/dev/null >"$REQS.new"
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
    # --require-hashes: every file pip fetches must match a hash in uv.lock.
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --require-hashes \
        --wheel-dir "$WHEELHOUSE/deps" --requirement "$REQS" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    printf '%s\n' "$reqs_sum" >"$WHEELHOUSE/deps/.stamp"
    log "$(find "$WHEELHOUSE/deps" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE/deps" | cut -f1)"
fi
# Every time, stamp or not: each wheel on disk must hash to what uv.lock lists for it, so a wheel
# swapped in build/ after it was downloaded fails here instead of being hashed into the image.
"$PYTHON" containers/common/hashed_requirements.py --verify "$WHEELHOUSE/deps" uv.lock \
    || { log "a wheel in $WHEELHOUSE/deps does not match uv.lock: delete $WHEELHOUSE/deps and rebuild"; exit 1; }
# Always from the wheels on disk, so the image installs exactly these files or fails.
"$PYTHON" containers/common/hashed_requirements.py "$WHEELHOUSE/deps" >"$WHEELHOUSE/requirements.txt"

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
