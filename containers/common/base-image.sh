#!/usr/bin/env bash
# Make the image's base without a registry: debootstrap a Debian bookworm minbase root with
# Python 3.11, then `docker import` it. Skipped when the image already exists (FORCE=1 rebuilds).
# No compilers go in: the builder stage installs only wheels, built on the host by wheelhouse.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BASE_IMAGE="${BASE_IMAGE:-kubesage/python-base:3.11-bookworm}"
SUITE=bookworm
ROOTFS="$BUILD_DIR/base-rootfs"
# xgboost's wheel vendors its own libgomp (xgboost.libs/), and apt already pulls libstdc++6, so the
# only runtime packages are Python itself, venv (the builder stage needs ensurepip) and CA certificates.
INCLUDE=python3,python3-venv,ca-certificates

log() { printf '[base-image] %s\n' "$*" >&2; }

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "$BASE_IMAGE exists; skipping (FORCE=1 rebuilds)"
    exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap missing: run containers/common/engine.sh first"; exit 1; }

# Use the machine's own Debian mirror (deb822 .sources or one-line .list), else deb.debian.org.
apt_mirror() {
    local uri
    uri="$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
    if [[ -z "$uri" ]]; then
        uri="$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '{print $NF}' | grep -v -- '-security' | head -n1 || true)"
    fi
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"

rm -rf "$ROOTFS"
mkdir -p "$ROOTFS"
log "debootstrap $SUITE (minbase + $INCLUDE) from $MIRROR"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >"$BUILD_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$BUILD_DIR/debootstrap.log" >&2; exit 1; }

# Trim what a container never needs: package caches and lists, docs, man pages, translations.
log "trimming the root filesystem"
rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/debconf/*-old \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
    "$ROOTFS"/etc/hostname "$ROOTFS"/etc/resolv.conf
find "$ROOTFS"/usr/lib/python3* -name __pycache__ -type d -prune -exec rm -rf {} +
# Docker manages these at run time; debootstrap copied the host's.
: >"$ROOTFS/etc/resolv.conf"

log "importing as $BASE_IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV LC_ALL=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE minbase + $INCLUDE" \
    - "$BASE_IMAGE" >/dev/null
rm -rf "$ROOTFS"
docker run --rm "$BASE_IMAGE" python3 -c 'import ssl, sys, venv; print("python", sys.version.split()[0])' >&2
log "done: $(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
