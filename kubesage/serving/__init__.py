"""The SageMaker-compatible inference server (GET /ping, POST /invocations) over daal4py.

The names below load on first use (PEP 562), so importing one module of the package, such as
`kubesage.serving.worker` in each uvicorn worker, does not import the server and XGBoost with it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubesage.serving.app import InferenceApp, create_app
    from kubesage.serving.model_source import resolve_model_dir
    from kubesage.serving.server import serve

OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.yaml")
"""The OpenAPI 3 description of the routes, shipped as package data."""

_LAZY = {
    "InferenceApp": "kubesage.serving.app",
    "create_app": "kubesage.serving.app",
    "resolve_model_dir": "kubesage.serving.model_source",
    "serve": "kubesage.serving.server",
}

__all__ = ["OPENAPI_DOCUMENT", "InferenceApp", "create_app", "resolve_model_dir", "serve"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
