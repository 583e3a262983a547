#!/usr/bin/env bash
# Debian's headless Chromium and its WebDriver, for the MLflow UI browser test (tests/ui/).
# No browser can be downloaded from a vendor here, so Playwright drives this one
# (executable_path=/usr/bin/chromium). Skips when already installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
chromium --version
