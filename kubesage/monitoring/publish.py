"""Where a drift result goes besides its folder: an MLflow run linked to the model version, CloudWatch.

MLflow: one run in the experiment `<model>-monitoring`, tagged with the model's name and version,
with the counts and each feature's distance and PSI as metrics and the four files as artifacts; the
model version gets `kubesage.drift.last_run_id` and `kubesage.drift.violations`, so the registry
page links to its latest check.

CloudWatch: Model Monitor's metrics, `feature_baseline_drift_<feature>` (the distance) in the
namespace `/aws/sagemaker/Endpoints/data-metric` with the Endpoint and MonitoringSchedule dimensions,
so alarms written for Model Monitor work unchanged. A feature name's characters outside
[A-Za-z0-9_.-] become `_` (`Day Mins` -> `feature_baseline_drift_Day_Mins`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubesage.monitoring.drift import DriftResult

NAMESPACE = "/aws/sagemaker/Endpoints/data-metric"
METRIC_PREFIX = "feature_baseline_drift_"
TAG_LAST_RUN = "kubesage.drift.last_run_id"
TAG_VIOLATIONS = "kubesage.drift.violations"
TAG_MODEL_NAME = "kubesage.model_name"
TAG_MODEL_VERSION = "kubesage.model_version"
# PutMetricData takes at most this many values per call in every region's documented limits.
METRICS_PER_CALL = 20


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str

    @classmethod
    def from_uri(cls, uri: str) -> ModelVersion | None:
        """`models:/NAME/VERSION` to its parts; None for anything else (a plain folder)."""
        match = re.fullmatch(r"models:/([^/]+)/(\d+)", uri.strip())
        return cls(match.group(1), match.group(2)) if match else None


def metric_name(feature: str) -> str:
    return METRIC_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", feature)


def cloudwatch_metrics(result: DriftResult) -> list[tuple[str, float]]:
    """(metric name, distance) for every compared feature."""
    return [(metric_name(d.name), float(d.distance)) for d in result.drifts if d.distance is not None]


def put_cloudwatch_metrics(result: DriftResult, endpoint: str, schedule: str, client: Any = None) -> int:
    """Send the drift distances to CloudWatch (AWS_ENDPOINT_URL honoured); returns how many were sent."""
    import boto3

    from kubesage.util.aws import aws_call

    cloudwatch = client or boto3.client("cloudwatch")
    dimensions = [{"Name": "Endpoint", "Value": endpoint}, {"Name": "MonitoringSchedule", "Value": schedule}]
    data = [
        {"MetricName": name, "Dimensions": dimensions, "Value": value, "Unit": "None"}
        for name, value in cloudwatch_metrics(result)
    ]
    for start in range(0, len(data), METRICS_PER_CALL):
        with aws_call(f"cloudwatch:PutMetricData in {NAMESPACE}"):
            cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + METRICS_PER_CALL])
    return len(data)


def mlflow_metrics(result: DriftResult) -> dict[str, float]:
    metrics = {
        "drift_rows": float(result.rows),
        "drift_requests": float(result.events),
        "drift_malformed_lines": float(len(result.malformed)),
        "drift_violations": float(len(result.violations)),
        "drift_features_drifted": float(len(result.drifted_features)),
    }
    for drift in result.drifts:
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", drift.name)
        if drift.distance is not None:
            metrics[f"distance.{key}"] = float(drift.distance)
        if drift.psi is not None:
            metrics[f"psi.{key}"] = float(drift.psi)
    return metrics


def log_to_mlflow(result: DriftResult, model: ModelVersion | None, captures: str) -> str:
    """One MLflow run holding the result, linked to the model version; returns its id."""
    import mlflow

    from kubesage.tracking import ensure_experiment, mlflow_call, mlflow_client, tracking_uri

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = f"{model.name}-monitoring" if model else "kubesage-monitoring"
    tags = {"kubesage.kind": "drift", "kubesage.captures": captures}
    if model:
        tags.update({TAG_MODEL_NAME: model.name, TAG_MODEL_VERSION: model.version})
    with mlflow_call("record the drift run", uri):
        experiment_id = ensure_experiment(experiment, uri)
        with mlflow.start_run(experiment_id=experiment_id, run_name="drift", tags=tags) as run:
            mlflow.log_metrics(mlflow_metrics(result))
            for path in result.files.values():
                mlflow.log_artifact(str(path), artifact_path="drift")
            run_id: str = run.info.run_id
        if model:
            client = mlflow_client()
            client.set_model_version_tag(model.name, model.version, TAG_LAST_RUN, run_id)
            client.set_model_version_tag(model.name, model.version, TAG_VIOLATIONS, str(len(result.violations)))
    return run_id
