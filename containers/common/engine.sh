#!/usr/bin/env bash
# Make a Docker engine available on this machine: install it from Debian's packages if missing,
# start dockerd in the background if it is not running, and wait until `docker info` answers.
# Idempotent: a second run with a running engine does nothing but check it. Needs root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
DOCKERD_LOG="$BUILD_DIR/dockerd.log"
WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
mkdir -p "$BUILD_DIR"

log() { printf '[engine] %s\n' "$*" >&2; }

# docker.io brings dockerd, containerd and runc; docker-compose (v1) is what the SageMaker SDK's local
# mode calls when the v2 plugin is absent; debootstrap makes the base image (base-image.sh).
PACKAGES=(docker.io docker-compose debootstrap ca-certificates iptables)

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$pkg"
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        log "packages present: ${PACKAGES[*]}"
        return
    fi
    if [[ $EUID -ne 0 ]]; then
        log "need root to install: ${missing[*]}"
        exit 1
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

engine_ready() { docker info >/dev/null 2>&1; }

close_inherited_fds() {
    local fd
    for fd in /proc/$BASHPID/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

start_dockerd() {
    if engine_ready; then
        log "engine already running"
        return
    fi
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd is running but not answering yet; waiting"
    else
        log "starting dockerd (log: $DOCKERD_LOG)"
        # setsid detaches dockerd from this shell's job control so it outlives `make`. Descriptors
        # other than 0-2 are closed first: a caller's lock (`flock FILE make image`) would otherwise
        # be held by dockerd for as long as it runs, and every later `flock FILE` would wait forever.
        (close_inherited_fds; setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &)
    fi
    local waited=0
    until engine_ready; do
        if ((waited >= WAIT_SECONDS)); then
            log "dockerd did not answer within ${WAIT_SECONDS}s; last log lines:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "engine ready after ${waited}s"
}

check_compose() {
    if docker compose version >/dev/null 2>&1; then
        log "compose: $(docker compose version 2>/dev/null | head -n1)"
    elif command -v docker-compose >/dev/null 2>&1; then
        log "compose: $(docker-compose version --short 2>/dev/null || echo 'docker-compose v1')"
    else
        log "neither 'docker compose' nor 'docker-compose' works; SageMaker local mode needs one"
        exit 1
    fi
}

install_packages
start_dockerd
check_compose
docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}' >&2
