"""The pipeline tracked in a real MLflow server process over HTTP (MLFLOW_TRACKING_URI=http://...)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tests.integration.cli_helpers import run_cli
from tests.mlflow_server import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_pipeline_run_lands_in_the_server(mlflow_server: MlflowServer, churn_csv: Path, tmp_path: Path) -> None:
    result = run_cli(
        [
            "run",
            "customer_churn",
            "--param",
            f"input_data={churn_csv}",
            "--param",
            "model_name=churn-server",
            "--output",
            "json",
        ],
        tmp_path,
        mlflow_server.url,
    )
    assert result.code == 0, result.stderr[-3000:]
    data = result.json
    assert data["registered_model_version"] == "1"
    client = MlflowClient(tracking_uri=mlflow_server.url)
    parent = client.get_run(data["mlflow_run_id"])
    assert parent.data.tags["kubesage.runner"] == "local"
    assert parent.data.metrics["roc_auc"] >= 0.95
    # Artifacts went through the server's artifact proxy, not to a local folder of the client.
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    assert not (tmp_path / "mlruns").exists()
    mlflow.set_tracking_uri(mlflow_server.url)
    local = Path(mlflow.artifacts.download_artifacts("models:/churn-server/1", dst_path=str(tmp_path / "dl")))
    assert (local / "model.ubj").is_file() and (local / "extra_files" / "feature_schema.json").is_file()
