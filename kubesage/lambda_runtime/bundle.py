"""What the handler knows about the deployed model: its feature schema and decision threshold.

Both come from the registered model version (the feature schema and evaluation.json that the
register step attaches), never from code: kubesage.deploy.bundle reads them at packaging time and the
bundle travels inside the Lambda zip or image as one JSON file, loaded once per container.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kubesage.churn.schema import FeatureSchema
from kubesage.errors import SchemaError

BUNDLE_FILENAME = "kubesage_model.json"
ENV_BUNDLE = "KUBESAGE_MODEL_BUNDLE"
BUNDLE_VERSION = 1


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
