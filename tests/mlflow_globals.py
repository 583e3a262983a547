"""MLflow's process-global tracking and registry URIs, put back as they were.

`mlflow.set_tracking_uri` (some tests, and the register step when a test calls it in-process) is
process-global and wins over MLFLOW_TRACKING_URI: left set, a later test's `MlflowClient()` on the same
worker writes to an earlier test's store while kubesage reads its own (an order-dependent failure).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

_MLFLOW_GLOBAL_URIS = (
    ("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
    ("mlflow.tracking._model_registry.utils", "_registry_uri"),
)


@contextlib.contextmanager
def mlflow_global_uris_restored() -> Iterator[None]:
    """Whatever the block sets as MLflow's global URIs is undone when it ends."""
    saved = [getattr(sys.modules.get(module), name, None) for module, name in _MLFLOW_GLOBAL_URIS]
    try:
        yield
    finally:
        for (module, name), value in zip(_MLFLOW_GLOBAL_URIS, saved, strict=True):
            if module in sys.modules:
                setattr(sys.modules[module], name, value)
