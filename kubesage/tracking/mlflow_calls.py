"""The one place MLflow's many exception types become a TrackingError.

MLflow raises MlflowException, requests' connection errors, SQLAlchemy's OperationalError and more,
depending on the store behind the URI. Callers wrap each call in `mlflow_call(what, uri)` and get
one exception type whose message names the store (credentials masked) and what to do.
"""

from __future__ import annotations

import os
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
        refused = access_refused(exc, what, uri)
        if refused is not None:
            raise refused from exc
        raise TrackingError(
            f"MLflow at {redact_uri(uri)} failed to {what}: {detail}. Check that the tracking server is "
            "running and reachable (MLFLOW_TRACKING_URI), or unset MLFLOW_TRACKING_URI to use the embedded store"
        ) from exc


def access_refused(exc: BaseException, what: str, uri: str) -> TrackingError | None:
    """A 401 or 403 from an authenticating server (`mlflow server --app-name basic-auth`) as one line
    saying who was refused and what to do; None for any other failure."""
    code = str(getattr(exc, "error_code", ""))
    text = str(exc)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "(no user)"
    if code == "PERMISSION_DENIED" or "error code 403" in text or "403 Client Error" in text:
        return TrackingError(
            f"MLflow at {redact_uri(uri)} refused user {user} permission to {what} (403): ask the server's admin to "
            f"grant it (`kubesage mlflow user add {user}` on the service's host grants the customer-churn experiment "
            "and model), or use credentials that have it"
        )
    if code == "UNAUTHENTICATED" or "error code 401" in text or "401 Client Error" in text:
        return TrackingError(
            f"MLflow at {redact_uri(uri)} did not accept the credentials of {user} (401) when trying to {what}: set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN); `kubesage mlflow up` "
            "prints where the admin's are"
        )
    return None
