"""The pipeline tracked in a real MLflow server process over HTTP (MLFLOW_TRACKING_URI=http://...).

The run read here is one of tests/tracked_runs.py's, which the MLflow UI's tests read too.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tests.tracked_runs import SAME_WORKER, SERVER_MODEL, TrackedRuns

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600), SAME_WORKER]  # two real runs


def test_pipeline_run_lands_in_the_server(tracked_runs: TrackedRuns, tmp_path: Path) -> None:
    data = next(result for result in tracked_runs.results if result["registered_model_name"] == SERVER_MODEL)
    assert data["registered_model_version"] == "1"
    url = tracked_runs.server.url
    client = MlflowClient(tracking_uri=url)
    parent = client.get_run(data["mlflow_run_id"])
    assert parent.data.tags["kubesage.runner"] == "local"
    assert parent.data.metrics["roc_auc"] >= 0.95
    # Artifacts went through the server's artifact proxy, not to a local folder of the client.
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    assert not (tracked_runs.workdir / "mlruns").exists()
    mlflow.set_tracking_uri(url)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{SERVER_MODEL}/1", dst_path=str(tmp_path / "dl")))
    assert (local / "model.ubj").is_file() and (local / "extra_files" / "feature_schema.json").is_file()
