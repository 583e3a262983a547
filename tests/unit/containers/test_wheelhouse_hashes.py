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


def test_every_build_checks_the_wheels_on_disk_against_the_lock(tmp_path: Path) -> None:
    """Issue 18 item 11: a wheel swapped in build/ after download fails even when the stamp matches."""
    import hashlib

    hashed = _module()
    wheels = tmp_path / "deps"
    wheels.mkdir()
    genuine = _wheel(wheels, "VALUE = 1\n")
    digest = hashlib.sha256(genuine.read_bytes()).hexdigest()
    lock = tmp_path / "uv.lock"
    lock.write_text(
        "version = 1\n"
        '[[package]]\nname = "kubesage-probe"\nversion = "1.0"\n'
        f'wheels = [{{ url = "https://x/kubesage_probe-1.0-py3-none-any.whl", hash = "sha256:{digest}" }}]\n'
        '[[package]]\nname = "kfp-server-api"\nversion = "2.17.3"\n'
        'sdist = { url = "https://x/kfp-server-api-2.17.3.tar.gz", hash = "sha256:00" }\n'
    )
    (wheels / "kfp_server_api-2.17.3-py3-none-any.whl").write_bytes(b"built on the host from the sdist")
    assert hashed.verify(wheels, lock) == ([], ["kfp_server_api-2.17.3-py3-none-any.whl"])
    _wheel(wheels, "VALUE = 'swapped'\n")
    problems, _ = hashed.verify(wheels, lock)
    assert len(problems) == 1
    assert problems[0].endswith("is not one uv.lock lists for kubesage-probe 1.0")
    assert hashed.main(["--verify", str(wheels), str(lock)]) == 1
    script = (ROOT / "containers" / "common" / "wheelhouse.sh").read_text()
    # The check runs outside the stamp's if/else: on every build.
    verify_at = script.index("hashed_requirements.py --verify")
    assert script.rindex("\nfi\n", 0, verify_at) > script.index('if [[ -f "$WHEELHOUSE/deps/.stamp"')
