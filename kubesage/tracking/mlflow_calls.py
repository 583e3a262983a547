"""The one place MLflow's many exception types become a TrackingError.

MLflow raises MlflowException, requests' connection errors, SQLAlchemy's OperationalError and more,
depending on the store behind the URI. Callers wrap each call in `mlflow_call(what, uri)` and get
one exception type whose message names the store (credentials removed) and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from kubesage.errors import KubesageError, TrackingError


def display_uri(uri: str) -> str:
    """The URI without user, password or query string, safe to print or store."""
    parts = urlsplit(uri)
    if not parts.netloc:
        return uri.split("?", 1)[0]
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@contextmanager
def mlflow_call(what: str, uri: str) -> Iterator[None]:
    """Map any failure of the MLflow call inside to TrackingError, naming `what` and the store."""
    try:
        yield
    except KubesageError:
        raise
    except Exception as exc:  # MLflow raises many unrelated types for an unreachable or refusing store
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"MLflow at {display_uri(uri)} failed to {what}: {detail}. Check that the tracking server is "
            "running and reachable (MLFLOW_TRACKING_URI), or unset MLFLOW_TRACKING_URI to use the embedded store"
        ) from exc
