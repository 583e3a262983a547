"""Real local servers the suites start: an `mlflow server` process and moto in server mode.

Each suite wraps these in fixtures of the scope it needs (integration: one per module; compliance:
one per session, so every runner's runs sit side by side in one store).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from moto.server import ThreadedMotoServer

from kubesage.mlflow_server import MlflowServer, start_mlflow_server


def running_mlflow(root: Path) -> Iterator[MlflowServer]:
    """A real `mlflow server` on loopback with its own store and artifacts under `root`."""
    server = start_mlflow_server(root)
    try:
        yield server
    finally:
        server.stop()


def running_moto() -> Iterator[str]:
    """moto in server mode on loopback: real HTTP through boto3, standing in for AWS."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
