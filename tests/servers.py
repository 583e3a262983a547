"""Real local servers the suites start (an `mlflow server` process, moto in server mode) and empty
MLflow SQLite stores.

tests/conftest.py starts one MLflow server per session (`shared_mlflow`), shared by the compliance and
integration suites, whose tests add their own runs and model versions and assert on those; a suite
that kills its server, or needs an empty store, starts its own with `running_mlflow`.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kubesage.util.boto_sessions import new_boto3_session
from tests.mlflow_server import MlflowServer, start_mlflow_server


def running_mlflow(root: Path, store_template: Path | None = None) -> Iterator[MlflowServer]:
    """A real `mlflow server` on loopback with its own store and artifacts under `root` (a copy of
    `store_template` when given, see `start_mlflow_server`), killed when done: its store is thrown away."""
    server = start_mlflow_server(root, store_template=store_template)
    try:
        yield server
    finally:
        server.kill()


def running_moto() -> Iterator[str]:
    """moto in server mode on loopback: real HTTP through boto3, standing in for AWS."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_session(endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """A boto3 session with moto's test keys (in the environment, where SageMaker local mode's own
    sessions find them too), tracking unset, and `bucket` created at `endpoint` if missing."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    boto = new_boto3_session(region_name="us-east-1")
    s3 = boto.client("s3", endpoint_url=endpoint)
    if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=bucket)
    return boto


def isolated_moto_env(endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Every boto3 client this test makes (and kubesage makes for it) speaks to moto at `endpoint`
    with throwaway keys, isolated from any real AWS config; `bucket` exists. Returns `endpoint`."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s3 = new_boto3_session().client("s3")  # a fresh session: it sees the variables just set
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=bucket)
    return endpoint


def migrated_sqlite_template(folder: Path) -> Path:
    """An empty MLflow SQLite store with every migration applied, made once to be copied.

    A new store runs MLflow's ~60 table migrations when first opened (5-8 s of CPU on the loaded
    2-core machine); a copy of this file opens as a fresh store in about 2 s. The default
    experiment is removed: it records the artifact folder of the process that created it, and each
    copy creates its own from its first user's working directory, as a new store does.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "mlflow.db"
    store = SqlAlchemyStore(f"sqlite:///{template}", str(folder / "mlruns"))
    store.engine.dispose()
    with sqlite3.connect(template) as db:
        db.execute("DELETE FROM experiments WHERE experiment_id = 0")
    return template


def fresh_sqlite_store(template: Path, target: Path) -> str:
    """A new, empty MLflow SQLite store at `target` (a copy of `template`); its tracking URI."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"
