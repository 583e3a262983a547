"""The built image: metadata, users, no compilers, no wheelhouse left behind."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import docker

pytestmark = pytest.mark.container

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_labels_name_version_and_commit(image_config: dict[str, Any]) -> None:
    labels = image_config["Config"]["Labels"]
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.title"] == "kubesage-xgboost-daal4py"


def test_runtime_configuration(image_config: dict[str, Any]) -> None:
    config = image_config["Config"]
    # KFP's DockerRunner and clusters run component commands in this image: no ENTRYPOINT.
    assert not config.get("Entrypoint")
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert "8080/tcp" in config["ExposedPorts"]


def test_users(image: str) -> None:
    # Root by default (SageMaker's contract, writable host mounts); `serve` drops to `kubesage`
    # (checked on the running server in test_serve.py).
    out = docker("run", "--rm", "--network", "none", image, "sh", "-c", "id -u; id -u kubesage; id -g kubesage").stdout
    assert out.split() == ["0", "10001", "10001"]


def test_no_compilers_and_no_wheelhouse(image: str) -> None:
    script = (
        "for tool in gcc cc c++ g++ clang ld as make; do command -v $tool; done; "
        "dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' 'gcc*' 'g++*' 'cpp*' 'binutils*' 'libc6-dev' 'clang*' "
        "2>/dev/null | grep '^ii' | grep -v ' gcc-12-base$'; "
        "ls -d /wheelhouse /wheelhouse-project /opt/project 2>/dev/null; true"
    )
    out = docker("run", "--rm", "--network", "none", image, "sh", "-c", script).stdout
    assert out.strip() == ""


def test_entry_commands_on_path(image: str) -> None:
    script = "for tool in train serve python; do command -v $tool; done"
    out = docker("run", "--rm", "--network", "none", image, "sh", "-c", script).stdout
    assert out.split() == ["/usr/local/bin/train", "/usr/local/bin/serve", "/opt/venv/bin/python"]


def test_runtime_imports_and_versions(image: str) -> None:
    code = (
        "import importlib.metadata as m, daal4py, xgboost, kubesage.image.entry, kubesage.serving.server; "
        "print(m.version('kubesage'), xgboost.__version__, m.version('scikit-learn-intelex'))"
    )
    out = docker("run", "--rm", "--network", "none", image, "python", "-c", code).stdout.split()
    import importlib.metadata as host

    import xgboost  # the distribution is xgboost-cpu; the module (and its version) is xgboost's

    assert out == [host.version("kubesage"), xgboost.__version__, host.version("scikit-learn-intelex")]


def test_image_stays_within_its_size_budget(image_config: dict[str, Any]) -> None:
    # 1.33 GB measured (xgboost's libxgboost.so alone is 226 MB); NCCL or the wheelhouse sneaking
    # in would add 400+ MB.
    assert image_config["Size"] < 1_500_000_000
