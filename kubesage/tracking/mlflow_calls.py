"""The one place MLflow's many exception types become a TrackingError.

MLflow raises MlflowException, requests' connection errors, SQLAlchemy's OperationalError and more,
depending on the store behind the URI. Callers wrap each call in `mlflow_call(what, uri)` and get
one exception type whose message names the store (credentials masked) and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kubesage.errors import KubesageError, TrackingError
from kubesage.util.redact import redact_text, redact_uri


@contextmanager
def mlflow_call(what: str, uri: str) -> Iterator[None]:
    """Map any failure of the MLflow call inside to TrackingError, naming `what` and the store."""
    try:
        yield
    except KubesageError:
        raise
    except Exception as exc:  # MLflow raises many unrelated types for an unreachable or refusing store
        text = redact_text(str(exc)).strip()
        detail = text.splitlines()[0][:300] if text else type(exc).__name__
        raise TrackingError(
            f"MLflow at {redact_uri(uri)} failed to {what}: {detail}. Check that the tracking server is "
            "running and reachable (MLFLOW_TRACKING_URI), or unset MLFLOW_TRACKING_URI to use the embedded store"
        ) from exc
