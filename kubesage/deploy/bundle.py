"""A model bundle built from a registered model version, at packaging time (never in the Lambda).

Reads the feature schema and the evaluation's decision threshold attached to the model (MLflow,
kubesage.churn.modelio); the result is kubesage.lambda_runtime.bundle's ModelBundle, which the zip or
the image carries as one JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubesage.churn.modelio import MLFLOW_EXTRA_FILES_DIR, load_schema_if_present
from kubesage.errors import DeployError
from kubesage.lambda_runtime.bundle import ModelBundle, check_threshold
from kubesage.serving.model_source import resolve_model_dir
from kubesage.util.redact import redact_text

EVALUATION_FILENAME = "evaluation.json"


def bundle_from_model(model: str, download_dir: str | Path | None = None) -> ModelBundle:
    """The bundle of a registered model version (`models:/NAME/VERSION`) or a model directory.

    Reads the feature schema and the evaluation's decision threshold attached to the model; a model
    without either cannot be served by the API, and the error says so.
    """
    directory = resolve_model_dir(model, download_dir)
    schema = load_schema_if_present(directory)
    if schema is None:
        raise DeployError(
            f"{model} has no feature_schema.json; register it with kubesage's pipeline, which attaches one"
        )
    # `model` travels in the zip and the logs: never with a credential a URI may carry.
    return ModelBundle(schema=schema, decision_threshold=read_threshold(directory, model), model=redact_text(model))


def read_threshold(directory: Path, model: str) -> float:
    """The decision threshold evaluate used, from the evaluation.json registered with the model."""
    for candidate in (directory / EVALUATION_FILENAME, directory / MLFLOW_EXTRA_FILES_DIR / EVALUATION_FILENAME):
        if candidate.exists():
            data: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
            try:
                threshold = float(data["binary_classification_metrics"]["decision_threshold"])
            except (KeyError, TypeError, ValueError) as exc:
                raise DeployError(
                    f"{candidate} records no decision_threshold ({exc!r}); re-run the pipeline to re-evaluate"
                ) from exc
            check_threshold(threshold, str(candidate))
            return threshold
    raise DeployError(
        f"{model} has no {EVALUATION_FILENAME}, so no decision threshold; register it with kubesage's pipeline"
    )
