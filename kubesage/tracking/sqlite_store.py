"""The embedded SQLite tracking store, safe for several pipeline runs (processes) at once.

Two problems appeared with concurrent runs on one `mlflow.db`:
- Creating the store runs MLflow's Alembic migrations. Two processes doing that at once on a new
  file fail ("duplicate column name", "table _alembic_tmp_runs already exists", "Online migration
  expected to match one row"). Creation is serialised with an exclusive lock on `<db>.lock`.
- SQLite lets one writer at a time and pysqlite waits only 5 s for the lock, then raises
  "database is locked"; steps of two runs on a busy host waited longer. Every SQLite connection
  SQLAlchemy opens in a kubesage process waits up to BUSY_TIMEOUT_MS instead.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 120_000
_installed = False


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI; None for other stores (and in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def install_busy_timeout() -> None:
    """Make every SQLite connection SQLAlchemy opens in this process wait for the write lock."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _set_busy_timeout)
    _installed = True


def _set_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


@contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite store (no-op for other stores) while it is created."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mlflow_client(uri: str | None = None) -> Any:
    """The one way kubesage builds an MlflowClient: for `uri` (default: the tracking URI in force),
    with a SQLite store's tables created or migrated under the lock, and its connections patient."""
    from mlflow import MlflowClient

    from kubesage.tracking.runs import tracking_uri

    uri = uri or tracking_uri()
    if sqlite_path(uri) is None:
        return MlflowClient(tracking_uri=uri)
    install_busy_timeout()
    with creation_lock(uri):
        # The client builds (and caches, per process and URI) the SQLAlchemy stores, which create
        # or migrate the tables on first use: the tracking store at once, the registry's on demand.
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        _ = client._get_registry_client().store
    return client
