#!/usr/bin/env bash
# Debian's PostgreSQL server, for `kubesage mlflow up` (the team tracking service's database) and its
# tests (tests/integration/test_mlflow_service.py). The package's own cluster is not used: kubesage
# creates one in its state folder. Skips when already installed.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/pg_ctl
