"""`monitor_churn` on the local runner, on the KFP API stand-in (which executes runs with kfp.local in a
clean process, standing in for a cluster) and on sagemaker-local (the SageMaker SDK's local mode: the
kubesage image in Docker, moto in server mode standing in for S3): the same drift check, the same
numbers, the model version linked, tracked in the session's real MLflow server.

The model version is registered once here from the suite's trained model and preprocess's baseline (a
whole training run would add minutes and prove nothing more about monitoring).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from kubesage.churn.features import FeatureSchema
from tests.integration.cli_helpers import run_cli
from tests.mlflow_globals import mlflow_global_uris_restored
from tests.mlflow_server import MlflowServer
from tests.monitoring_data import held_out_rows, write_captures
from tests.needs import IMAGE
from tests.servers import running_moto
from tests.standins.kfp_api import KfpStandin

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("kfp_faults_reset")]
MODEL_NAME = "customer-churn-monitored"


@pytest.fixture(scope="module")
def registered(
    mlflow_server: MlflowServer,
    prepared: dict[str, Path],
    model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch_module: pytest.MonkeyPatch,
) -> str:
    from kubesage.components.register import register_model

    monkeypatch_module.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    evaluation = tmp_path_factory.mktemp("evaluation") / "evaluation.json"
    evaluation.write_text(
        json.dumps({"binary_classification_metrics": {"accuracy": {"value": 0.9}, "auc": {"value": 0.95}}})
    )
    with mlflow_global_uris_restored():  # register_model sets MLflow's global URI, for this fixture only
        registration = register_model(
            model_dir, prepared["schema"], evaluation, prepared["test"], MODEL_NAME, baseline_dir=prepared["baseline"]
        )
    return registration.model_uri


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def shifted_captures(churn: pd.DataFrame, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The held-out rows with Day Mins shifted by one standard deviation, captured as JSON and CSV."""
    rows = held_out_rows(churn)
    shifted = rows.assign(**{"Day Mins": rows["Day Mins"] + rows["Day Mins"].std()})
    folder = tmp_path_factory.mktemp("captures")
    return write_captures(shifted, folder, FeatureSchema.load(prepared["schema"]), ("JSON", "CSV"))


def monitor_params(captures: Path, model: str) -> list[str]:
    return ["--param", f"captures={captures}", "--param", f"model={model}", "--output", "json"]


def run_monitor(
    runner: str, options: dict[str, Any], captures: Path, model: str, tracking_uri: str, workdir: Path
) -> dict[str, Any]:
    """`monitor_churn` on `runner` through the Python API in this process (what `kubesage run` calls; its
    `--output json` is this `to_dict()`): these tests compare runners, not the CLI, and a `kubesage run`
    process would add its start-up (importing MLflow: 2-4 s here) to every run."""
    from kubesage import sdk
    from kubesage.util.environment import environment

    params = {"captures": str(captures), "model": model}
    with environment({"MLFLOW_TRACKING_URI": tracking_uri}):
        result = sdk.run("monitor_churn", runner=runner, params=params, options=options, workdir=workdir / "build")
    return result.to_dict()


@pytest.fixture(scope="module")
def local_metrics(
    registered: str, shifted_captures: Path, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, float]:
    """The local runner's run: the reference the other runners must match."""
    workdir = tmp_path_factory.mktemp("local")
    options = {"pipeline_root": str(workdir / "local_outputs")}
    result = run_monitor("local", options, shifted_captures, registered, mlflow_server.url, workdir)
    assert result["status"] == "succeeded", result["failure"]
    metrics: dict[str, float] = result["metrics"]
    return metrics


def assert_day_mins_flagged(metrics: dict[str, float], runner: str) -> None:
    assert metrics["drift_violations"] == 1 and metrics["drift_features_drifted"] == 1, (runner, metrics)
    assert (metrics["drift_rows"], metrics["drift_requests"]) == (1500, 150), runner
    assert metrics["distance.Day_Mins"] > 0.25 and metrics["distance.Eve_Mins"] < 0.1, runner


def test_monitor_churn_runs_the_same_check_on_local_and_kfp(
    registered: str,
    shifted_captures: Path,
    local_metrics: dict[str, float],
    mlflow_server: MlflowServer,
    kfp_standin: KfpStandin,
    tmp_path: Path,
) -> None:
    options = {"host": kfp_standin.url, "poll_seconds": 0.5}
    result = run_monitor("kfp", options, shifted_captures, registered, mlflow_server.url, tmp_path)
    assert result["status"] == "succeeded", result["failure"]
    assert_day_mins_flagged(local_metrics, "local")
    assert_day_mins_flagged(result["metrics"], "kfp")
    assert result["metrics"] == pytest.approx(local_metrics, rel=1e-12)
    client = MlflowClient(mlflow_server.url)
    version = registered.rsplit("/", 1)[1]
    tags = client.get_model_version(MODEL_NAME, version).tags
    step_run = client.get_run(tags["kubesage.drift.last_run_id"])
    assert step_run.data.tags["kubesage.model_version"] == version and step_run.data.metrics["drift_violations"] == 1
    artifacts = {a.path for a in client.list_artifacts(step_run.info.run_id, "drift")}
    assert "drift/report.html" in artifacts and "drift/constraint_violations.json" in artifacts


@pytest.mark.container
def test_monitor_churn_on_sagemaker_local_reads_the_captures_from_its_s3_input(
    registered: str,
    shifted_captures: Path,
    local_metrics: dict[str, float],
    mlflow_server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The capture folder is uploaded to (moto's) S3 and reaches the drift step as its input channel."""
    import boto3

    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    moto = running_moto()
    endpoint = next(moto)
    try:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="kubesage-monitor")
        options = {"image_uri": IMAGE, "bucket": "kubesage-monitor", "s3_endpoint_url": endpoint}
        flags = [arg for name, value in options.items() for arg in ("--option", f"{name}={value}")]
        command = ["run", "monitor_churn", "--runner", "sagemaker-local", *flags]
        done = run_cli([*command, *monitor_params(shifted_captures, registered)], tmp_path, mlflow_server.url)
        assert done.code == 0, done.stderr[-4000:]
        staged = boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket="kubesage-monitor")["Contents"]
    finally:
        moto.close()
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded"
    uploaded = [o["Key"] for o in staged if o["Key"].endswith(".jsonl") and "/inputs/" in o["Key"]]
    assert len(uploaded) == len(list(shifted_captures.rglob("*.jsonl"))), uploaded
    assert_day_mins_flagged(result["metrics"], "sagemaker-local")
    assert result["metrics"] == pytest.approx(local_metrics, rel=1e-12)
