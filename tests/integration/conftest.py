"""Real local servers for the integration suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubesage.mlflow_server import MlflowServer, start_mlflow_server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server` process on loopback, with its own SQLite store and artifact folder."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()
