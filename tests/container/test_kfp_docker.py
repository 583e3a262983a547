"""The churn pipeline under KFP's own DockerRunner: every step runs inside the image, offline.

DockerRunner mounts only the pipeline root (at the same path inside the container), so the MLflow
store, its artifacts, the failure folder and the input data all live under it; the containers get
no network at all.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import roc_auc_score

from kubesage.churn.modelio import MODEL_FILENAME, booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from kubesage.tracking import ENV_EXPERIMENT_ID, ENV_PARENT_RUN_ID, ENV_RUNNER, ENV_TRACKING_URI, TAG_STEP

pytestmark = pytest.mark.container

STEPS = ("preprocess", "train", "evaluate", "register")


@pytest.fixture(scope="module")
def pipeline_run(image: str, churn_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from kfp import local
    from mlflow import MlflowClient

    from kubesage.pipelines.customer_churn import customer_churn

    root = tmp_path_factory.mktemp("kfp-docker-root").resolve()
    data = root / "data" / "churn.csv"
    data.parent.mkdir()
    shutil.copy(churn_csv, data)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment("kfp-docker", artifact_location=str(root / "mlruns"))
    parent = client.create_run(experiment_id, run_name="customer-churn")
    environment = {
        ENV_TRACKING_URI: tracking_uri,
        ENV_PARENT_RUN_ID: parent.info.run_id,
        ENV_EXPERIMENT_ID: experiment_id,
        ENV_RUNNER: "kfp-docker",
        "KUBESAGE_FAILURE_DIR": str(root / "failures"),
    }
    runner = local.DockerRunner(environment=environment, network_mode="none")
    # The pipeline root is the one folder DockerRunner mounts: everything the steps share is in it.
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    try:
        customer_churn(input_data=str(data), max_depth=4, num_round=120, model_name="churn-docker")
    finally:
        # kfp.local keeps its configuration in a process-wide singleton: leave no DockerRunner behind.
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "unused"))
    yield {"root": root, "client": client, "experiment_id": experiment_id, "parent": parent.info.run_id}


def only(paths: list[Path], what: str) -> Path:
    assert len(paths) == 1, f"expected one {what}, found {paths}"
    return paths[0]


def test_every_step_ran_in_the_image(pipeline_run: dict[str, Any], image: str) -> None:
    client = pipeline_run["client"]
    runs = [r for r in client.search_runs([pipeline_run["experiment_id"]]) if r.data.tags.get(TAG_STEP)]
    by_step = {r.data.tags[TAG_STEP]: r for r in runs}
    assert set(by_step) == set(STEPS)
    for step, run in by_step.items():
        assert run.info.status == "FINISHED", step
        assert run.data.tags["mlflow.parentRunId"] == pipeline_run["parent"]
        assert run.data.tags["kubesage.runner"] == "kfp-docker"
    assert not (pipeline_run["root"] / "failures").exists()


def test_the_model_trained_in_the_image_is_good(pipeline_run: dict[str, Any]) -> None:
    outputs = pipeline_run["root"]
    model_file = only(sorted(outputs.glob(f"*/train/model/{MODEL_FILENAME}")), "trained model")
    test_csv = only(sorted(outputs.glob("*/preprocess/test")), "test split")
    booster = load_booster(model_file.parent)
    test = read_labelled_csv(test_csv)
    assert roc_auc_score(test.labels, booster_probabilities(booster, test.features)) > 0.95
    client = pipeline_run["client"]
    evaluate_run = only(
        [r for r in client.search_runs([pipeline_run["experiment_id"]]) if r.data.tags.get(TAG_STEP) == "evaluate"],
        "evaluate run",
    )
    assert evaluate_run.data.metrics["accuracy"] > 0.9


def test_the_model_was_registered(pipeline_run: dict[str, Any]) -> None:
    client = pipeline_run["client"]
    versions = client.search_model_versions("name='churn-docker'")
    assert [str(v.version) for v in versions] == ["1"]
    parent = client.get_run(pipeline_run["parent"])
    assert parent.data.tags.get("kubesage.registered_model_version") == "1"
