"""The SageMaker-compatible inference server (GET /ping, POST /invocations) over daal4py."""

from pathlib import Path

from kubesage.serving.app import InferenceApp, create_app
from kubesage.serving.model_source import resolve_model_dir
from kubesage.serving.server import serve

OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.yaml")
"""The OpenAPI 3 description of the routes, shipped as package data."""

__all__ = ["OPENAPI_DOCUMENT", "InferenceApp", "create_app", "resolve_model_dir", "serve"]
