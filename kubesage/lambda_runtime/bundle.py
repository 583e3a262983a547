"""What the handler knows about the deployed model: its feature schema and decision threshold.

Both come from the registered model version (the feature schema and evaluation.json that the
register step attaches), never from code: `bundle_from_model` reads them at packaging time and the
bundle travels inside the Lambda zip or image as one JSON file, loaded once per container.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.churn.features import FeatureSchema
from kubesage.errors import SchemaError
from kubesage.lambda_runtime.errors import DeployError

BUNDLE_FILENAME = "kubesage_model.json"
ENV_BUNDLE = "KUBESAGE_MODEL_BUNDLE"
BUNDLE_VERSION = 1
EVALUATION_FILENAME = "evaluation.json"
EXTRA_FILES_DIR = "extra_files"


@dataclass(frozen=True)
class ModelBundle:
    schema: FeatureSchema
    decision_threshold: float
    model: str  # where it came from, e.g. models:/customer-churn/3

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": BUNDLE_VERSION,
                "model": self.model,
                "decision_threshold": self.decision_threshold,
                "feature_schema": self.schema.to_dict(),
            },
            indent=1,
            sort_keys=False,  # the schema's key order is the feature order
        )

    @classmethod
    def from_json(cls, text: str, source: str = "the model bundle") -> ModelBundle:
        try:
            data = json.loads(text)
            if data.get("version") != BUNDLE_VERSION:
                raise SchemaError(f"{source} has version {data.get('version')!r}, expected {BUNDLE_VERSION}")
            threshold = float(data["decision_threshold"])
            schema = FeatureSchema.from_dict(data["feature_schema"])
            model = str(data["model"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"{source} is malformed ({exc!r}); re-package with `kubesage deploy`") from exc
        check_threshold(threshold, source)
        return cls(schema=schema, decision_threshold=threshold, model=model)

    def write(self, path: str | Path) -> Path:
        target = Path(path)
        target.write_text(self.to_json(), encoding="utf-8")
        return target


def bundle_path() -> Path:
    """KUBESAGE_MODEL_BUNDLE, else the bundle at the root of the function's code (LAMBDA_TASK_ROOT)."""
    explicit = os.environ.get(ENV_BUNDLE)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("LAMBDA_TASK_ROOT", ".")) / BUNDLE_FILENAME


def load_bundle(path: str | Path | None = None) -> ModelBundle:
    source = Path(path) if path is not None else bundle_path()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"no model bundle at {source} ({exc.strerror}); package the function with kubesage") from exc
    return ModelBundle.from_json(text, str(source))


def check_threshold(threshold: float, source: str) -> None:
    if not 0.0 < threshold < 1.0:
        raise SchemaError(f"{source}: decision threshold {threshold} is not between 0 and 1")


def bundle_from_model(model: str, download_dir: str | Path | None = None) -> ModelBundle:
    """The bundle of a registered model version (`models:/NAME/VERSION`) or a model directory.

    Reads the feature schema and the evaluation's decision threshold attached to the model; a model
    without either cannot be served by the API, and the error says so.
    """
    from kubesage.churn.modelio import load_schema_if_present
    from kubesage.serving.model_source import resolve_model_dir
    from kubesage.util.redact import redact_text  # here, not at the top: the Lambda zip ships without it

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
    for candidate in (directory / EVALUATION_FILENAME, directory / EXTRA_FILES_DIR / EVALUATION_FILENAME):
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
