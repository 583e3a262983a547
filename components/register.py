"""Register: the model, its signature, input example, feature schema and evaluation, in MLflow's registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubesage.components import defaults
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.evaluate import EVALUATION_FILENAME, read_metric
from kubesage.errors import TrackingError
from kubesage.features import FEATURE_SCHEMA_FILENAME, FeatureSchema
from kubesage.modelio import load_booster
from kubesage.tracking import tracking_uri

DEFAULT_MODEL_NAME = defaults.MODEL_NAME
INPUT_EXAMPLE_ROWS = 3


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    model_uri: str
    run_id: str


def _staged_copy(source: str | Path, staging: Path, filename: str) -> str:
    """Give an artifact its conventional file name: KFP artifact paths have arbitrary names."""
    staging.mkdir(parents=True, exist_ok=True)
    target = staging / filename
    target.write_bytes(Path(source).read_bytes())
    return str(target)


def register_model(
    model_dir: str | Path,
    schema_path: str | Path,
    evaluation_path: str | Path,
    test_csv: str | Path,
    model_name: str = DEFAULT_MODEL_NAME,
    run_id: str | None = None,
    staging_dir: str | Path | None = None,
) -> Registration:
    """Log the booster with mlflow.xgboost (UBJ, no pickle) and register a new version.

    If anything after the version is created fails, the version is deleted again, so the registry
    never holds a half-registered model.
    """
    import mlflow
    import pandas as pd
    import xgboost
    from mlflow.models import infer_signature

    booster = load_booster(model_dir)
    schema = FeatureSchema.load(schema_path)
    test = read_labelled_csv(test_csv)
    example = pd.DataFrame(test.features[:INPUT_EXAMPLE_ROWS], columns=schema.feature_names)
    signature = infer_signature(example, np.zeros(len(example), dtype=np.float64))
    staging = Path(staging_dir or Path(model_dir).parent / "register-staging")
    extra_files = [
        _staged_copy(schema_path, staging, FEATURE_SCHEMA_FILENAME),
        _staged_copy(evaluation_path, staging, EVALUATION_FILENAME),
    ]
    metrics = {name: read_metric(evaluation_path, name) for name in ("accuracy", "roc_auc")}

    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    try:
        with mlflow.start_run(run_id=run_id) as active:
            info = mlflow.xgboost.log_model(
                booster,
                name="model",
                signature=signature,
                input_example=example,
                model_format="ubj",
                extra_files=extra_files,
                registered_model_name=model_name,
                metadata={"kubesage_feature_schema_version": schema.version},
                # Explicit requirements: inferring them imports the model in a subprocess (seconds).
                pip_requirements=[f"xgboost=={xgboost.__version__}"],
            )
            version = str(info.registered_model_version)
            active_run_id = active.info.run_id
    except Exception as exc:
        raise TrackingError(f"could not register model {model_name!r} in MLflow: {exc}") from exc
    try:
        for key, value in metrics.items():
            client.set_model_version_tag(model_name, version, key, f"{value:.6f}")
        client.set_model_version_tag(model_name, version, "kubesage.feature_schema", FEATURE_SCHEMA_FILENAME)
        client.update_model_version(
            model_name,
            version,
            description=(
                f"XGBoost binary:logistic, served through daal4py. accuracy {metrics['accuracy']:.4f}, "
                f"ROC AUC {metrics['roc_auc']:.4f} on the test split."
            ),
        )
    except Exception as exc:
        client.delete_model_version(model_name, version)
        raise TrackingError(
            f"registered {model_name} v{version} but could not annotate it ({exc}); the version was removed"
        ) from exc
    return Registration(
        name=model_name, version=version, model_uri=f"models:/{model_name}/{version}", run_id=active_run_id
    )
