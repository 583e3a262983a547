"""Real local servers for the integration suite, one of each per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubesage.mlflow_server import MlflowServer
from tests.servers import running_mlflow, running_moto


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server` process on loopback, one per test module, with its own store and artifacts."""
    yield from running_mlflow(tmp_path_factory.mktemp("mlflow-server"))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on loopback: real HTTP through boto3, standing in for AWS (one per test module)."""
    yield from running_moto()
