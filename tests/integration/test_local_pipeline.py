"""The churn pipeline end to end on KFP's local runner, tracked in a real MLflow store."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from kubesage.churn.modelio import Daal4pyModel, load_booster
from kubesage.components.datasets import read_labelled_csv
from tests.integration.cli_helpers import CliResult, run_cli
from tests.sdk_runs import run_in_workdir
from tests.servers import fresh_sqlite_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-run")


@pytest.fixture(scope="module")
def tracking_uri(workdir: Path, mlflow_sqlite_template: Path) -> str:
    """A new SQLite store, copied from the session's migrated template (a new file's migrations cost 2-3 s)."""
    return fresh_sqlite_store(mlflow_sqlite_template, workdir / "mlflow.db")


@pytest.fixture(scope="module")
def churn_run(workdir: Path, tracking_uri: str, churn_csv: Path) -> dict[str, Any]:
    """The run the module reads, through the Python API in this process (tests/sdk_runs.py: what
    `kubesage run --output json` prints, without a new process's start-up and zygote, ~5 s of CPU).
    The command itself runs below: a failure (non-zero exit, JSON), refused parameters, and a rerun in
    this folder in text mode, which succeeds from the cache."""
    return run_in_workdir("customer_churn", workdir, tracking_uri, {"input_data": str(churn_csv)})


def test_run_reaches_the_seed_quality_and_registers(churn_run: dict[str, Any]) -> None:
    assert churn_run["status"] == "succeeded"
    assert churn_run["metrics"]["roc_auc"] >= 0.95
    assert churn_run["metrics"]["accuracy"] >= 0.8
    assert churn_run["registered_model_name"] == "customer-churn"
    assert churn_run["registered_model_version"] == "1"
    assert churn_run["not_registered_reason"] is None
    assert [s["name"] for s in churn_run["steps"]] == ["preprocess", "train", "evaluate", "register"]
    assert all(s["status"] == "succeeded" for s in churn_run["steps"])


def test_mlflow_parent_and_nested_runs(churn_run: dict[str, Any], tracking_uri: str, churn_csv: Path) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    parent = client.get_run(churn_run["mlflow_run_id"])
    tags = parent.data.tags
    assert tags["kubesage.runner"] == "local"
    assert tags["kubesage.pipeline"] == "customer-churn"
    assert tags["kubesage.data_uri"] == str(churn_csv)
    assert tags["kubesage.data_sha256"] == hashlib.sha256(churn_csv.read_bytes()).hexdigest()
    assert len(tags["mlflow.source.git.commit"]) in (40, len("unknown"))
    assert parent.data.params["max_depth"] == "5" and parent.data.params["min_accuracy"] == "0.8"
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_step = {c.data.tags["kubesage.step"]: c for c in children}
    assert set(by_step) == {"preprocess", "train", "evaluate", "register"}
    assert by_step["train"].data.params["subsample"] == "0.7"
    assert by_step["train"].data.metrics["daal4py_parity_max_abs_diff"] < 1e-5
    assert by_step["preprocess"].data.metrics["rows_train"] == 3500
    evaluate_files = {a.path for a in client.list_artifacts(by_step["evaluate"].info.run_id)}
    evaluate_files |= {a.path for a in client.list_artifacts(by_step["evaluate"].info.run_id, "plots")}
    assert {"evaluation.json", "plots/roc_curve.png", "plots/confusion_matrix.png"} <= evaluate_files
    assert "feature_schema.json" in {a.path for a in client.list_artifacts(by_step["preprocess"].info.run_id)}
    baseline = {a.path for a in client.list_artifacts(by_step["preprocess"].info.run_id, "baseline")}
    assert baseline == {"baseline/statistics.json", "baseline/constraints.json"}  # the drift baseline
    assert parent.data.metrics["roc_auc"] == pytest.approx(churn_run["metrics"]["roc_auc"])


def test_registered_model_loads_and_predicts(churn_run: dict[str, Any], tracking_uri: str, workdir: Path) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    uri = "models:/customer-churn/1"
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(workdir / "downloaded")))
    assert (local / "model.ubj").is_file()
    assert (local / "extra_files" / "feature_schema.json").is_file()
    assert (local / "extra_files" / "evaluation.json").is_file()
    # The drift baseline travels with the version: Model Monitor's files of the training split.
    statistics = json.loads((local / "extra_files" / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == 3500 and len(statistics["features"]) == 19
    assert "Phone" not in {f["name"] for f in statistics["features"]}
    assert (local / "extra_files" / "constraints.json").is_file()
    assert not list(local.rglob("*.pkl")) and not list(local.rglob("*.pickle"))
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None and len(info.signature.inputs.input_names()) == 103
    model = mlflow.pyfunc.load_model(uri)
    test = read_labelled_csv(next((workdir / "local_outputs").rglob("preprocess/test")))
    names = info.signature.inputs.input_names()
    scores = np.asarray(model.predict(pd.DataFrame(test.features[:50], columns=names)))
    daal = Daal4pyModel.from_booster(load_booster(local)).probabilities(test.features[:50])
    assert np.max(np.abs(scores - daal)) < 1e-5
    version = MlflowClient(tracking_uri=tracking_uri).get_model_version("customer-churn", "1")
    assert float(version.tags["roc_auc"]) >= 0.95


def test_runs_lists_the_run_with_metrics(churn_run: dict[str, Any], workdir: Path, tracking_uri: str) -> None:
    result = run_cli(["runs", "--output", "json"], workdir, tracking_uri)
    assert result.code == 0, result.stderr
    rows = {r["run_id"]: r for r in result.json}
    row = rows[churn_run["mlflow_run_id"]]
    assert row["runner"] == "local" and row["registered"] == "customer-churn v1"
    assert row["metrics"]["roc_auc"] == pytest.approx(churn_run["metrics"]["roc_auc"])


def test_below_the_gate_ends_cleanly_unregistered(
    churn_run: dict[str, Any], workdir: Path, tracking_uri: str, churn_csv: Path
) -> None:
    # From the first run's directory: its cached steps are reused, as by a second `kubesage run` there.
    params = {"input_data": str(churn_csv), "min_accuracy": "0.999"}
    data = run_in_workdir("customer_churn", workdir, tracking_uri, params)
    assert data["status"] == "succeeded"
    assert data["registered_model_version"] is None
    assert "accuracy" in data["not_registered_reason"] and "below the minimum 0.9990" in data["not_registered_reason"]
    versions = MlflowClient(tracking_uri=tracking_uri).search_model_versions("name = 'customer-churn'")
    assert [str(v.version) for v in versions] == ["1"]


def _registered_versions(tracking_uri: str) -> int:
    return len(MlflowClient(tracking_uri=tracking_uri).search_model_versions("name = 'customer-churn'"))


def _bad_file(tmp: Path, churn_csv: Path, kind: str) -> Path:
    lines = churn_csv.read_text().splitlines(keepends=True)
    path = tmp / f"{kind}.csv"
    if kind == "empty":
        path.write_text("")
    elif kind == "misspelled":
        path.write_text(lines[0].replace("Day Mins", "Day Mns") + "".join(lines[1:200]))
    elif kind == "non_numeric":
        row = lines[5].split(",")
        row[7] = "lots"  # Day Mins
        path.write_text(lines[0] + "".join(lines[1:5]) + ",".join(row) + "".join(lines[6:200]))
    elif kind == "bad_label":
        path.write_text(
            lines[0] + "".join(lines[1:199]) + lines[199].replace("False.", "Maybe.").replace("True.", "Maybe.")
        )
    elif kind == "one_class":
        path.write_text(lines[0] + "".join(line for line in lines[1:400] if "True." in line))
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "empty"),
        ("misspelled", "Day Mins"),
        ("non_numeric", "Day Mins"),
        ("bad_label", "Maybe."),
        ("one_class", "one class"),
    ],
)
def test_bad_input_fails_clearly_and_registers_nothing(
    kind: str,
    message: str,
    churn_run: dict[str, Any],
    workdir: Path,
    tracking_uri: str,
    churn_csv: Path,
    tmp_path: Path,
) -> None:
    # Through the runner in this process (its warm fork server: ~1 s a run, not a new CLI's ~8 s); the
    # CLI's rendering of the same failure is the next test's.
    from kubesage.runners.registry import get_runner, load_pipeline
    from kubesage.util.environment import environment

    before = _registered_versions(tracking_uri)
    path = _bad_file(tmp_path, churn_csv, kind)
    runner = get_runner("local", {"pipeline_root": str(tmp_path / "root")})
    with environment({"MLFLOW_TRACKING_URI": tracking_uri}):
        result = runner.run(load_pipeline("customer_churn", tmp_path / "ir"), {"input_data": str(path)}, [].append)
    assert result.status == "failed"
    assert result.failure is not None
    assert "step preprocess" in result.failure and "DataError" in result.failure
    assert message.lower() in result.failure.lower()
    assert "Traceback" not in result.failure
    assert _registered_versions(tracking_uri) == before


def test_the_cli_exits_non_zero_with_the_failure_on_bad_input(
    churn_run: dict[str, Any], workdir: Path, tracking_uri: str, churn_csv: Path, tmp_path: Path
) -> None:
    before = _registered_versions(tracking_uri)
    path = _bad_file(tmp_path, churn_csv, "non_numeric")
    result = run_cli(
        ["run", "customer_churn", "--param", f"input_data={path}", "--output", "json"], workdir, tracking_uri
    )
    assert result.code != 0
    data = result.json
    assert data["status"] == "failed"
    assert "step preprocess" in data["failure"] and "DataError" in data["failure"]
    assert "day mins" in data["failure"].lower()
    assert "Traceback" not in data["failure"] + result.stderr
    assert _registered_versions(tracking_uri) == before


def test_a_missing_input_file_fails_before_anything_runs(
    workdir: Path, tracking_uri: str, churn_run: dict[str, Any], tmp_path: Path
) -> None:
    """Checked before the parent run opens: one message, well under 2 s of work, no run left behind."""
    client = MlflowClient(tracking_uri=tracking_uri)
    runs_before = len(client.search_runs([churn_run_experiment(client)]))
    missing = tmp_path / "nope.csv"
    result = run_cli(["run", "customer-churn", "--param", f"input_data={missing}"], workdir, tracking_uri)
    assert result.code == 2
    assert result.stderr.count(f"input data file {missing} does not exist") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "preprocess" not in result.stderr  # no task started
    assert len(client.search_runs([churn_run_experiment(client)])) == runs_before


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("max_dept=3", "did you mean 'max_depth'"),
        ("max_depth=deep", "not a valid integer"),
        ("min_accuracy=high", "not a valid float"),
    ],
)
def test_bad_parameters_are_caught_before_anything_runs(
    param: str, message: str, workdir: Path, tracking_uri: str, churn_csv: Path, churn_run: dict[str, Any]
) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    runs_before = len(client.search_runs([churn_run_experiment(client)]))
    result: CliResult = run_cli(
        ["run", "customer_churn", "--param", f"input_data={churn_csv}", "--param", param], workdir, tracking_uri
    )
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(client.search_runs([churn_run_experiment(client)])) == runs_before


def churn_run_experiment(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name("customer-churn")
    assert experiment is not None
    return str(experiment.experiment_id)


def test_registered_model_is_served_from_the_registry(
    churn_run: dict[str, Any], workdir: Path, tracking_uri: str, churn_csv: Path
) -> None:
    """`kubesage serve --model models:/customer-churn/1` answers raw records like the pipeline's model."""
    import os
    import subprocess

    import httpx

    from kubesage.util.ports import free_port
    from tests.integration.cli_helpers import KUBESAGE, stop_server, wait_ready

    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    server = subprocess.Popen(
        [KUBESAGE, "serve", "--model", "models:/customer-churn/1", "--port", url.rsplit(":", 1)[1], "--workers", "1"],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    records = pd.read_csv(churn_csv).head(5).drop(columns=["Churn?"]).to_dict("records")
    try:
        wait_ready(url, server)
        response = httpx.post(f"{url}/invocations", json={"records": records}, timeout=10)
        assert response.status_code == 200, response.text
        scores = [p["score"] for p in response.json()["predictions"]]
    finally:
        stop_server(server)
    mlflow.set_tracking_uri(tracking_uri)
    local = Path(mlflow.artifacts.download_artifacts("models:/customer-churn/1", dst_path=str(workdir / "dl2")))
    from kubesage.churn.features import FeatureSchema, transform_records

    schema = FeatureSchema.load(local / "extra_files" / "feature_schema.json")
    expected = Daal4pyModel.from_booster(load_booster(local)).probabilities(transform_records(records, schema))
    assert np.max(np.abs(np.asarray(scores) - expected)) < 1e-6


def test_a_rerun_shows_each_cached_step_and_no_download_bars(
    churn_run: dict[str, Any], workdir: Path, tracking_uri: str, churn_csv: Path
) -> None:
    """The same run again in the same folder, in text mode: every step reused, one line each. A cached
    step's files are copied through a download, which drew MLflow's progress bar on the console."""
    again = run_cli(["run", "customer_churn", "--param", f"input_data={churn_csv}"], workdir, tracking_uri)
    assert again.code == 0, again.stderr[-3000:]
    for step in ("preprocess", "train", "evaluate", "register"):
        assert re.search(rf"== {step}\s+cached\s+\d+\.\d s\s+outputs of run \w+ reused", again.stderr), again.stderr
    assert "Downloading artifacts" not in again.stderr + again.stdout
    assert "%|" not in again.stderr + again.stdout
