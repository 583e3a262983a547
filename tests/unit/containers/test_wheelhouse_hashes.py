"""The image installs only the wheels the wheelhouse checked (issue 10, item 17).

wheelhouse.sh fetches with `pip wheel --require-hashes` against uv.lock's hashes, then
containers/common/hashed_requirements.py pins each wheel on disk by its sha256, and the Dockerfile installs
with `--require-hashes`. Here pip itself (`pip download --no-index`, no network) checks a wheelhouse
pinned that way, and refuses it after a wheel was swapped.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hashed", ROOT / "containers" / "common" / "hashed_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wheel(directory: Path, body: str) -> Path:
    """A minimal valid wheel, `kubesage_probe-1.0`, whose module holds `body`."""
    path = directory / "kubesage_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("kubesage_probe.py", body)
        whl.writestr(
            "kubesage_probe-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: kubesage-probe\nVersion: 1.0\n"
        )
        whl.writestr(
            "kubesage_probe-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        whl.writestr("kubesage_probe-1.0.dist-info/RECORD", "")
    return path


def _pip() -> list[str]:
    """The pip wheelhouse.sh uses ($WHEELHOUSE_PYTHON or python3); the uv venv has none of its own."""
    for python in (os.environ.get("WHEELHOUSE_PYTHON", "python3"), "/usr/bin/python3", sys.executable):
        found = shutil.which(python)
        if found and subprocess.run([found, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return [found, "-m", "pip"]
    pytest.fail("no python3 with pip found; wheelhouse.sh needs one too")


def _pip_check(wheels: Path, requirements: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    command = [*_pip(), "download", "--no-index", "--no-deps", "--require-hashes"]
    command += ["--find-links", str(wheels), "--requirement", str(requirements), "--dest", str(dest)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_pinned_wheels_install_and_a_swapped_wheel_is_refused(tmp_path: Path) -> None:
    hashed = _module()
    wheels = tmp_path / "deps"
    wheels.mkdir()
    line = hashed.wheel_requirement(_wheel(wheels, "VALUE = 1\n"))
    assert line.startswith("kubesage_probe==1.0 --hash=sha256:")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(line + "\n")
    ok = _pip_check(wheels, requirements, tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr
    _wheel(wheels, "VALUE = 'swapped'\n")  # same name and version, other bytes
    swapped = _pip_check(wheels, requirements, tmp_path / "swapped")
    assert swapped.returncode != 0
    assert "DO NOT MATCH THE HASHES" in swapped.stderr


def test_the_image_and_the_wheelhouse_require_hashes() -> None:
    dockerfile = (ROOT / "containers" / "xgboost-daal4py" / "Dockerfile").read_text()
    install = next(line for line in dockerfile.splitlines() if "pip install" in line and "find-links" in line)
    assert "--require-hashes" in install
    script = (ROOT / "containers" / "common" / "wheelhouse.sh").read_text()
    assert "--no-hashes" not in script
    assert "pip wheel --quiet --disable-pip-version-check --no-deps --require-hashes" in script
    assert "hashed_requirements.py" in script
