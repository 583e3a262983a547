"""`monitor_churn` on the local runner and on the KFP API stand-in (which executes runs with kfp.local in a
clean process, standing in for a cluster): the same drift check, the same numbers, the model version
linked, tracked in the session's real MLflow server.

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
from tests.mlflow_server import MlflowServer
from tests.monitoring_data import held_out_rows, write_captures
from tests.standins.kfp_api import KfpStandin
from tests.standins.kfp_fixtures import kfp_faults_reset, kfp_standin  # noqa: F401

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
    registration = register_model(
        model_dir, prepared["schema"], evaluation, prepared["test"], MODEL_NAME, baseline_dir=prepared["baseline"]
    )
    return registration.model_uri


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_monitor_churn_runs_the_same_check_on_local_and_kfp(
    registered: str,
    churn: pd.DataFrame,
    prepared: dict[str, Path],
    mlflow_server: MlflowServer,
    kfp_standin: KfpStandin,  # noqa: F811
    tmp_path: Path,
) -> None:
    rows = held_out_rows(churn)
    shifted = rows.assign(**{"Day Mins": rows["Day Mins"] + rows["Day Mins"].std()})
    captures = write_captures(shifted, tmp_path / "captures", FeatureSchema.load(prepared["schema"]), ("JSON", "CSV"))
    params = ["--param", f"captures={captures}", "--param", f"model={registered}", "--output", "json"]
    local = run_cli(["run", "monitor_churn", *params], tmp_path, mlflow_server.url)
    assert local.code == 0, local.stderr[-3000:]
    kfp = run_cli(
        [
            "run",
            "monitor_churn",
            "--runner",
            "kfp",
            "--option",
            f"host={kfp_standin.url}",
            "--option",
            "poll_seconds=0.5",
            *params,
        ],
        tmp_path,
        mlflow_server.url,
    )
    assert kfp.code == 0, kfp.stderr[-3000:]
    results = {name: json.loads(result.stdout) for name, result in (("local", local), ("kfp", kfp))}
    for name, result in results.items():
        assert result["status"] == "succeeded", name
        metrics = result["metrics"]
        assert metrics["drift_violations"] == 1 and metrics["drift_features_drifted"] == 1, (name, metrics)
        assert (metrics["drift_rows"], metrics["drift_requests"]) == (1500, 150), name
        assert metrics["distance.Day_Mins"] > 0.25 and metrics["distance.Eve_Mins"] < 0.1, name
    assert results["kfp"]["metrics"] == pytest.approx(results["local"]["metrics"], rel=1e-12)
    client = MlflowClient(mlflow_server.url)
    version = registered.rsplit("/", 1)[1]
    tags = client.get_model_version(MODEL_NAME, version).tags
    step_run = client.get_run(tags["kubesage.drift.last_run_id"])
    assert step_run.data.tags["kubesage.model_version"] == version and step_run.data.metrics["drift_violations"] == 1
    artifacts = {a.path for a in client.list_artifacts(step_run.info.run_id, "drift")}
    assert "drift/report.html" in artifacts and "drift/constraint_violations.json" in artifacts
