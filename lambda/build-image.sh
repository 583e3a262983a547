#!/usr/bin/env bash
# Build kubesage/lambda-api:{latest,<version>} and fetch the Lambda Runtime Interface Emulator.
#   build/lambda-image/wheelhouse/   the `lambda-image` dependency group (awslambdaric, boto3), pinned with
#                                    uv.lock's hashes, which the image's pip install checks every build
#   build/lambda-image/task/         the handler's modules (python -m kubesage.deploy.package --code-only)
#   build/lambda/aws-lambda-rie      the emulator, from the aws-sam-cli wheel on PyPI (it is not
#                                    downloadable from GitHub here); mounted at run time, never shipped
# Needs the Docker engine and kubesage/python-base:3.11-bookworm (make image builds both first).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="${BASE_IMAGE:-kubesage/python-base:3.11-bookworm}"
IMAGE="${LAMBDA_IMAGE:-kubesage/lambda-api}"
PYTHON="${PYTHON:-python3}"
SAM_CLI_VERSION=1.170.0
SAM_CLI_SHA256=24ebaf5ecba38dc1758089968cb89ab61e124b84e92a344fc7a2771a47f4d0bf
CONTEXT="$ROOT/build/lambda-image"
RIE="$ROOT/build/lambda/aws-lambda-rie"
cd "$ROOT"

log() { printf '[lambda-image] %s\n' "$*" >&2; }
pip_quiet() { "$PYTHON" -m pip "$@" --quiet --disable-pip-version-check 2> >(grep -v 'is ignored: it is neither' >&2); }

# 1. The emulator, once.
if [[ ! -x "$RIE" ]]; then
    log "fetching the Runtime Interface Emulator from aws-sam-cli $SAM_CLI_VERSION"
    mkdir -p "$(dirname "$RIE")"
    tmp="$(mktemp -d)"
    pip_quiet download --no-deps --only-binary=:all: "aws-sam-cli==$SAM_CLI_VERSION" -d "$tmp"
    wheel="$tmp/aws_sam_cli-$SAM_CLI_VERSION-py3-none-any.whl"
    echo "$SAM_CLI_SHA256  $wheel" | sha256sum --check --quiet
    "$PYTHON" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("samcli/local/rapid/aws-lambda-rie-x86_64"))' "$wheel" "$RIE"
    chmod 0755 "$RIE"
    rm -rf "$tmp"
fi

# 2. The wheelhouse, rebuilt when the lock's lambda-image group changes.
mkdir -p "$CONTEXT/wheelhouse"
# With uv.lock's sha256 hashes: the download and the image's install (--require-hashes) both check
# every wheel against the lock, the install on every build, so a wheel swapped in build/ fails it.
uv export --frozen --only-group lambda-image --no-header --format requirements-txt 2>/dev/null \
    | grep -vE '^[[:space:]]*#' >"$CONTEXT/requirements.new"
if ! cmp -s "$CONTEXT/requirements.new" "$CONTEXT/wheelhouse/requirements.txt"; then
    log "building the wheelhouse"
    find "$CONTEXT/wheelhouse" -name '*.whl' -delete
    pip_quiet download --no-deps --require-hashes --only-binary=:all: --python-version 3.11 \
        --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$CONTEXT/wheelhouse" -r "$CONTEXT/requirements.new"
    mv "$CONTEXT/requirements.new" "$CONTEXT/wheelhouse/requirements.txt"
else
    rm -f "$CONTEXT/requirements.new"
fi

# 3. The handler's code, the scripts and the Dockerfile.
rm -rf "$CONTEXT/task"
"$ROOT/.venv/bin/python" -m kubesage.deploy.package --code-only --output "$CONTEXT/task" >/dev/null
cp lambda/Dockerfile lambda/bootstrap lambda/entrypoint.sh "$CONTEXT/"

docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || { log "$BASE_IMAGE missing: run make image"; exit 1; }
VERSION="$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
GIT_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
log "building $IMAGE:$VERSION on $BASE_IMAGE"
DOCKER_BUILDKIT=0 docker build --quiet --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
    --build-arg GIT_COMMIT="$GIT_COMMIT" --tag "$IMAGE:$VERSION" --tag "$IMAGE:latest" "$CONTEXT" \
    2> >(grep -vE 'DEPRECATED: The legacy builder|BuildKit is currently disabled|environment-variable\.$|^$' >&2) >/dev/null
log "done: $IMAGE:latest, $(docker image inspect -f '{{.Size}}' "$IMAGE:latest" | awk '{printf "%.0f MB", $1/1e6}')"
