"""Fixtures for the container suite: the real Docker engine and the image `make image` builds.

Where the engine or the image is missing, every test here skips with the command that fixes it;
under `make test` (KUBESAGE_TESTS_STRICT=1) it fails instead (tests/needs.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.needs import IMAGE, missing_image, require

# String values, as SageMaker writes hyperparameters.json.
HYPERPARAMETERS = {"max_depth": "4", "eta": "0.2", "num_round": "120", "early_stopping_rounds": "10"}


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def image() -> str:
    """The image under test; skips (fails under `make test`) when the engine or the image is missing."""
    require(missing_image(IMAGE))
    return IMAGE


@pytest.fixture(scope="session")
def image_config(image: str) -> dict[str, Any]:
    inspected: list[dict[str, Any]] = json.loads(docker("image", "inspect", image).stdout)
    return inspected[0]


@dataclass(frozen=True)
class TrainingRun:
    base: Path
    returncode: int
    logs: str

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def failure_file(self) -> Path:
        return self.base / "output" / "failure"


def sagemaker_layout(base: Path, splits: dict[str, Path], hyperparameters: dict[str, str]) -> None:
    """/opt/ml as SageMaker lays it out for a training job with train, validation and schema channels."""
    for channel in ("train", "validation", "schema"):
        target = base / "input" / "data" / channel
        target.mkdir(parents=True)
        shutil.copy(splits[channel], target)
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (base / "model").mkdir()
    (base / "output").mkdir()


def docker_train(image: str, base: Path) -> TrainingRun:
    """`docker run IMAGE train` with the job's folders mounted where SageMaker mounts them."""
    name = f"kubesage-train-{uuid.uuid4().hex[:8]}"
    try:
        result = docker(
            "run", "--name", name, "--network", "none",
            "-v", f"{base / 'input'}:/opt/ml/input:ro",
            "-v", f"{base / 'model'}:/opt/ml/model",
            "-v", f"{base / 'output'}:/opt/ml/output",
            image, "train",
            timeout=600, check=False,
        )  # fmt: skip
    finally:
        docker("rm", "-f", name, check=False)
    return TrainingRun(base=base, returncode=result.returncode, logs=result.stdout + result.stderr)


@pytest.fixture(scope="session")
def trained(image: str, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    base = tmp_path_factory.mktemp("opt-ml")
    sagemaker_layout(base, prepared, HYPERPARAMETERS)
    return docker_train(image, base)


@pytest.fixture
def container_name() -> Iterator[str]:
    """A unique container name, removed after the test whatever happened."""
    name = f"kubesage-test-{uuid.uuid4().hex[:8]}"
    yield name
    docker("rm", "-f", name, check=False, timeout=60)
