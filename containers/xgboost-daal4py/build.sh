#!/usr/bin/env bash
# Build kubesage/xgboost-daal4py:{latest,<version>} from the wheelhouse on the debootstrapped base.
# Run after engine.sh, base-image.sh and wheelhouse.sh (`make image` runs all four). Docker's layer
# cache makes a rebuild with nothing changed take seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-kubesage/python-base:3.11-bookworm}"
IMAGE="${IMAGE:-kubesage/xgboost-daal4py}"
cd "$ROOT"

log() { printf '[build-image] %s\n' "$*" >&2; }

VERSION="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ "$GIT_COMMIT" != unknown ]] && ! git diff --quiet HEAD -- 2>/dev/null; then
    GIT_COMMIT="$GIT_COMMIT-dirty"
fi

for needed in build/wheelhouse/requirements.txt build/wheelhouse/project; do
    [[ -e "$needed" ]] || { log "$needed missing: run containers/common/wheelhouse.sh first"; exit 1; }
done
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
    || { log "$BASE_IMAGE missing: run containers/common/base-image.sh first"; exit 1; }

log "building $IMAGE:$VERSION ($GIT_COMMIT) on $BASE_IMAGE"
# The classic builder: this engine (Debian's docker.io) has no buildx plugin, and the Dockerfile
# needs nothing BuildKit-only.
DOCKER_BUILDKIT=0 docker build --quiet \
    --file containers/xgboost-daal4py/Dockerfile \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg VERSION="$VERSION" \
    --build-arg GIT_COMMIT="$GIT_COMMIT" \
    --tag "$IMAGE:$VERSION" --tag "$IMAGE:latest" \
    . 2> >(grep -vE 'DEPRECATED: The legacy builder|BuildKit is currently disabled|environment-variable\.$|^$' >&2) >/dev/null
log "done: $IMAGE:latest, $(docker image inspect -f '{{.Size}}' "$IMAGE:latest" | awk '{printf "%.0f MB", $1/1e6}')"
