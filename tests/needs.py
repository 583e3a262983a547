"""What the costly suites need from outside Python (a Docker engine and images, a browser), checked once.

A developer's `pytest` or `make test-fast` on a machine without Docker or Chromium skips those tests
with the reason and the command that installs what is missing. `make test` (CI) sets
`KUBESAGE_TESTS_STRICT=1`: there the same absence fails every such test, so CI never passes with a
suite silently skipped.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

STRICT_ENV = "KUBESAGE_TESTS_STRICT"
# The image `make image` builds; the container suites and the sagemaker-local runner run it.
IMAGE = os.environ.get("KUBESAGE_IMAGE", "kubesage/xgboost-daal4py:latest")
# Debian's headless Chromium, which Playwright drives (scripts/install-browser.sh; never downloaded).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def strict() -> bool:
    """True under `make test`: a missing engine, image or browser fails instead of skipping."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


@functools.cache
def missing_docker() -> str | None:
    """Why Docker cannot be used here, or None when the CLI is installed and the engine answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not on PATH: run `make image` (it installs and starts the engine)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer `docker info` within 60 s: run `make image`"
    if info.returncode != 0:
        return f"the Docker engine is not answering ({info.stderr.strip()[:200]}): run `make image`"
    return None


@functools.cache
def missing_image(image: str) -> str | None:
    """Why `image` cannot be run here (no engine, or not built), or None when it exists."""
    reason = missing_docker()
    if reason is not None:
        return reason
    found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=60, check=False)
    return None if found.returncode == 0 else f"image {image} does not exist: run `make image`"


@functools.cache
def missing_browser() -> str | None:
    """Why the browser suite cannot run here, or None when Chromium is installed."""
    if not Path(CHROMIUM).exists():
        return f"chromium is not installed ({CHROMIUM}): run scripts/install-browser.sh (make test does)"
    return None


@functools.cache
def missing_postgres() -> str | None:
    """Why `kubesage mlflow up` cannot start PostgreSQL here, or None when Debian's server is installed."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) and shutil.which("pg_ctl") is None:
        return "PostgreSQL's server is not installed: run scripts/install-postgres.sh (make test does)"
    return None


def require(reason: str | None) -> None:
    """Skip the current test because of `reason` (fail instead under `make test`); no-op when None."""
    if reason is None:
        return
    if strict():
        pytest.fail(f"{reason} ({STRICT_ENV}=1: make test runs every suite)", pytrace=False)
    pytest.skip(reason)


# Marker -> what tests carrying it need; tests/conftest.py applies it before each such test runs.
NEEDS_BY_MARKER = {
    "container": lambda: missing_image(IMAGE),
    "browser": missing_browser,
}
