"""Register: the model, its signature, input example, feature schema and evaluation, in MLflow's registry."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kubesage.churn.features import FEATURE_SCHEMA_FILENAME, FeatureSchema
from kubesage.churn.modelio import TAG_MODEL_SHA256, load_booster, model_sha256
from kubesage.components import defaults
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.evaluate import EVALUATION_FILENAME, read_metric
from kubesage.errors import TrackingError
from kubesage.monitoring.statistics import CONSTRAINTS_FILENAME, STATISTICS_FILENAME
from kubesage.tracking import TAG_PIPELINE_RUN_ID, mlflow_client, tracking_uri
from kubesage.tracking.filters import filter_literal
from kubesage.util.redact import redact_text

DEFAULT_MODEL_NAME = defaults.MODEL_NAME
INPUT_EXAMPLE_ROWS = 3
TAG_FEATURE_SCHEMA = "kubesage.feature_schema"
# The SageMaker execution whose model package holds this model (the package records the same ARN in
# its CustomerMetadataProperties): `kubesage deploy` refuses a package and a version that differ.
TAG_EXECUTION_ARN = "kubesage.sagemaker_execution_arn"
ENV_EXECUTION_ARN = "KUBESAGE_SAGEMAKER_EXECUTION_ARN"


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


@contextmanager
def _staging_folder(staging_dir: str | Path | None) -> Iterator[Path]:
    """`staging_dir`, or a fresh temporary folder removed afterwards: beside the model would be inside
    a step's input, which on SageMaker is read-only to the unprivileged user the step runs as."""
    if staging_dir:
        yield Path(staging_dir)
        return
    with tempfile.TemporaryDirectory(prefix="kubesage-register-") as folder:
        yield Path(folder)


def register_model(
    model_dir: str | Path,
    schema_path: str | Path,
    evaluation_path: str | Path,
    test_csv: str | Path,
    model_name: str = DEFAULT_MODEL_NAME,
    run_id: str | None = None,
    staging_dir: str | Path | None = None,
    pipeline_run_id: str | None = None,
    baseline_dir: str | Path | None = None,
) -> Registration:
    """Log the booster with mlflow.xgboost (UBJ, no pickle) and register it as one new version.

    Atomic: the version is created by one call that carries all its tags and its description, so
    there is no window in which an untagged version exists and nothing to clean up afterwards.
    Idempotent: the version is tagged with the pipeline run's id; a retried register step (a KFP
    retry, SageMaker RetryPipelineExecution) finds that version and returns it instead of
    registering a second one. Without a pipeline run id (a step called on its own) every call
    registers a new version.
    """
    import mlflow
    import pandas as pd
    import xgboost
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow_client()
    if pipeline_run_id:
        existing = _version_for_pipeline_run(client, model_name, pipeline_run_id)
        if existing is not None:
            return existing

    booster = load_booster(model_dir)
    schema = FeatureSchema.load(schema_path)
    test = read_labelled_csv(test_csv)
    example = pd.DataFrame(test.features[:INPUT_EXAMPLE_ROWS], columns=schema.feature_names)
    signature = infer_signature(example, np.zeros(len(example), dtype=np.float64))
    metrics = {name: read_metric(evaluation_path, name) for name in ("accuracy", "roc_auc")}
    tags = {key: f"{value:.6f}" for key, value in metrics.items()}
    tags[TAG_FEATURE_SCHEMA] = FEATURE_SCHEMA_FILENAME
    # The digest of the model as the training step wrote it (on SageMaker, the file inside the
    # package's model.tar.gz): what deploy and the serving container check before using it.
    tags[TAG_MODEL_SHA256] = model_sha256(model_dir)
    execution_arn = os.environ.get(ENV_EXECUTION_ARN, "").strip()
    if execution_arn:
        tags[TAG_EXECUTION_ARN] = execution_arn
    if pipeline_run_id:
        tags[TAG_PIPELINE_RUN_ID] = pipeline_run_id
    description = (
        f"XGBoost binary:logistic, served through daal4py. accuracy {metrics['accuracy']:.4f}, "
        f"ROC AUC {metrics['roc_auc']:.4f} on the test split."
    )
    with _staging_folder(staging_dir) as staging:
        extra_files = [
            _staged_copy(schema_path, staging, FEATURE_SCHEMA_FILENAME),
            _staged_copy(evaluation_path, staging, EVALUATION_FILENAME),
        ]
        # The drift baseline travels with the model: `kubesage drift --model models:/NAME/N` finds it there.
        if baseline_dir is not None:
            extra_files += [
                _staged_copy(Path(baseline_dir) / name, staging, name)
                for name in (STATISTICS_FILENAME, CONSTRAINTS_FILENAME)
            ]
        try:
            with mlflow.start_run(run_id=run_id) as active:
                # Logged only, not registered: a logged model that is never registered is inert.
                info = mlflow.xgboost.log_model(
                    booster,
                    name="model",
                    signature=signature,
                    input_example=example,
                    model_format="ubj",
                    extra_files=extra_files,
                    metadata={"kubesage_feature_schema_version": schema.version},
                    # Explicit requirements: inferring them imports the model in a subprocess (seconds).
                    pip_requirements=[f"xgboost=={xgboost.__version__}"],
                )
                active_run_id = active.info.run_id
            _ensure_registered_model(client, model_name)
            version = client.create_model_version(
                model_name,
                source=info.model_uri,
                # The version links to the pipeline's parent run (when there is one), so the parent's
                # page and the runs table show the registered model; the model itself stays on the step run.
                run_id=pipeline_run_id or active_run_id,
                tags=tags,
                description=description,
                model_id=info.model_id,
            )
        except Exception as exc:
            raise TrackingError(
                f"could not register model {model_name!r} in MLflow: {redact_text(str(exc))}; nothing was registered, "
                "so the step can be retried"
            ) from exc
    return Registration(
        name=model_name,
        version=str(version.version),
        model_uri=f"models:/{model_name}/{version.version}",
        run_id=active_run_id,
    )


def _version_for_pipeline_run(client: Any, model_name: str, pipeline_run_id: str) -> Registration | None:
    """The version an earlier attempt of this pipeline run registered, if any (the oldest, should there be two)."""
    try:
        found = client.search_model_versions(
            f"name = {filter_literal(model_name)} and tags.`{TAG_PIPELINE_RUN_ID}` = {filter_literal(pipeline_run_id)}"
        )
    except Exception as exc:
        raise TrackingError(
            f"could not look up earlier registrations of {model_name!r} in MLflow: {redact_text(str(exc))}"
        ) from exc
    if not found:
        return None
    first = min(found, key=lambda v: int(v.version))
    return Registration(
        name=model_name,
        version=str(first.version),
        model_uri=f"models:/{model_name}/{first.version}",
        run_id=first.run_id,
    )


def _ensure_registered_model(client: Any, model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
