"""`kubesage drift` end to end: captures in S3 (moto in server mode stands in for S3 and CloudWatch,
over HTTP), Model Monitor's files, the exit status, the CloudWatch metrics and the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from kubesage.churn.features import FeatureSchema
from kubesage.monitoring.publish import NAMESPACE
from tests.integration.cli_helpers import run_cli
from tests.monitoring_data import held_out_rows, model_baseline, write_captures
from tests.servers import fresh_sqlite_store, moto_session

pytestmark = [pytest.mark.integration]
BUCKET = "captures"


@pytest.fixture(scope="module")
def baseline(prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_baseline(prepared, tmp_path_factory.mktemp("baseline"))


def upload(folder: Path, s3: object, prefix: str) -> str:
    for path in folder.rglob("*.jsonl"):
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder).as_posix()}")  # type: ignore[attr-defined]
    return f"s3://{BUCKET}/{prefix}"


def test_drift_reads_s3_puts_cloudwatch_metrics_and_exits_3_on_violations(
    churn: pd.DataFrame,
    baseline: Path,
    tmp_path: Path,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_sqlite_template: Path,
) -> None:
    session = moto_session(moto_endpoint, BUCKET, monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    rows = held_out_rows(churn)
    shifted = rows.assign(**{"Day Mins": rows["Day Mins"] + rows["Day Mins"].std()})
    folder = write_captures(shifted, tmp_path / "captures", FeatureSchema.load(baseline), ("JSON", "CSV", "BASE64"))
    source = upload(folder, session.client("s3", endpoint_url=moto_endpoint), "data-capture")
    tracking = fresh_sqlite_store(mlflow_sqlite_template, tmp_path / "mlflow.db")  # migrated: the CLI skips them
    args = ["drift", "--captures", source, "--baseline", str(baseline), "--output-dir", str(tmp_path / "out")]
    args += ["--cloudwatch-endpoint", "churn-endpoint", "--output", "json"]
    result = run_cli(args, tmp_path, tracking)
    assert result.code == 3, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "violations" and summary["drifted_features"] == ["Day Mins"]
    assert (summary["rows"], summary["requests"], summary["malformed_lines"]) == (1500, 150, 0)
    assert summary["cloudwatch_metrics"] == 19
    violations = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [
        ("Day Mins", "baseline_drift_check")
    ]
    # CloudWatch holds Model Monitor's metric with the distance drift.json reports.
    cloudwatch = session.client("cloudwatch", endpoint_url=moto_endpoint)
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]}
    assert "feature_baseline_drift_Day_Mins" in names and len(names) == 19
    distance = next(
        f["distance"]
        for f in json.loads((tmp_path / "out" / "drift.json").read_text())["features"]
        if f["name"] == "Day Mins"
    )
    stats = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName="feature_baseline_drift_Day_Mins",
        Dimensions=[
            {"Name": "Endpoint", "Value": "churn-endpoint"},
            {"Name": "MonitoringSchedule", "Value": "kubesage-drift"},
        ],
        StartTime=pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1),
        EndTime=pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert stats and stats[0]["Maximum"] == pytest.approx(distance)
    # The MLflow run holds the files and the distances.
    run = mlflow.MlflowClient(tracking).get_run(summary["mlflow_run_id"])
    assert run.data.metrics["drift_violations"] == 1 and run.data.metrics["distance.Day_Mins"] == pytest.approx(
        distance
    )
    artifacts = {a.path for a in mlflow.MlflowClient(tracking).list_artifacts(run.info.run_id, "drift")}
    assert artifacts == {
        f"drift/{n}" for n in ("statistics.json", "constraint_violations.json", "drift.json", "report.html")
    }


@pytest.mark.slow  # one (stand-in) pipeline run
def test_retrain_data_starts_the_training_pipeline_when_a_feature_drifted(
    churn: pd.DataFrame, baseline: Path, churn_csv: Path, tmp_path: Path, mlflow_sqlite_template: Path
) -> None:
    """The loop closed: a stand-in training pipeline (one task counting the new data's rows) stands in for
    customer_churn, which would add a whole training run here."""
    import os
    import subprocess

    from tests.conftest import REPO_ROOT
    from tests.integration.cli_helpers import KUBESAGE

    rows = held_out_rows(churn)
    shifted = rows.assign(**{"Int'l Plan": "yes"})
    drifted = write_captures(shifted, tmp_path / "drifted", FeatureSchema.load(baseline), ("JSON",))
    tracking = fresh_sqlite_store(mlflow_sqlite_template, tmp_path / "mlflow.db")  # migrated: the CLI skips them
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PYTHONPATH": str(REPO_ROOT)}
    # Without drift nothing starts: tests/unit/cli/test_drift.py.
    args = [KUBESAGE, "drift", "--captures", str(drifted), "--baseline", str(baseline), "--no-track"]
    args += ["--output-dir", str(tmp_path / "out"), "--retrain-data", str(churn_csv)]
    args += ["--retrain-pipeline", "tests.integration.local_pipelines:retrain_pipeline", "--output", "json"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    code, summary, stderr = done.returncode, json.loads(done.stdout), done.stderr
    assert code == 3 and summary["drifted_features"] == ["Int'l Plan"], stderr[-2000:]
    assert summary["retrain"]["status"] == "succeeded" and summary["retrain"]["pipeline"].endswith("retrain_pipeline")
    run = mlflow.MlflowClient(tracking).get_run(summary["retrain"]["mlflow_run_id"])
    assert run.data.params["input_data"] == str(churn_csv)
