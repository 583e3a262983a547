"""Real local servers for the integration suite: the session's MLflow server, one moto per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mlflow_server import MlflowServer
from tests.servers import running_moto


@pytest.fixture(scope="session")
def mlflow_server(shared_mlflow: MlflowServer) -> MlflowServer:
    """The session's real `mlflow server` on loopback (tests/conftest.py), shared with the compliance suite."""
    return shared_mlflow


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on loopback: real HTTP through boto3, standing in for AWS (one per test module)."""
    yield from running_moto()
