"""`docker run IMAGE train` on the real churn data, laid out as SageMaker lays out a training job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from kubesage.churn.features import FEATURE_SCHEMA_FILENAME, FeatureSchema
from kubesage.churn.modelio import MODEL_FILENAME, booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from tests.container.conftest import TrainingRun, docker, docker_train, sagemaker_layout

pytestmark = pytest.mark.container


def test_train_writes_a_good_model(trained: TrainingRun, prepared: dict[str, Path]) -> None:
    assert trained.returncode == 0, trained.logs
    assert not trained.failure_file.exists()
    assert (trained.model_dir / MODEL_FILENAME).is_file()
    assert FeatureSchema.load(trained.model_dir / FEATURE_SCHEMA_FILENAME) == FeatureSchema.load(prepared["schema"])
    booster = load_booster(trained.model_dir)
    test = read_labelled_csv(prepared["test"])
    auc = roc_auc_score(test.labels, booster_probabilities(booster, test.features))
    assert auc > 0.95


def test_train_used_the_string_hyperparameters(trained: TrainingRun) -> None:
    # max_depth "4" arrived as the int 4: no tree in the model is deeper.
    booster = load_booster(trained.model_dir)
    depth = max(
        len(line) - len(line.lstrip("\t"))
        for tree in booster.get_dump()
        for line in tree.splitlines()
        if "leaf=" in line
    )
    assert depth == 4
    assert booster.num_boosted_rounds() <= 120
    metrics = json.loads((trained.base / "output" / "data" / "metrics.json").read_text())
    assert metrics["validation_auc"] > 0.9
    # One `name=value;` line per metric, for SageMaker metric definitions.
    assert f"metric validation_auc={metrics['validation_auc']:.6g};" in trained.logs


def test_bad_hyperparameter_fails_with_a_reason(
    image: str, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("opt-ml-bad")
    sagemaker_layout(base, prepared, {"max_depth": "five", "eta": "0.2"})

    run = docker_train(image, base)

    assert run.returncode != 0
    reason = run.failure_file.read_text()
    assert "max_depth='five' is not a valid int" in reason
    assert "Traceback" not in run.logs
    assert not (run.model_dir / MODEL_FILENAME).exists()


def test_docker_stop_ends_training_with_a_reason(
    image: str, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, container_name: str
) -> None:
    # As PID 1, `train` would ignore SIGTERM without a handler and `docker stop` (like SageMaker's
    # StopTrainingJob) would have to kill it. A run that cannot finish on its own:
    base = tmp_path_factory.mktemp("opt-ml-stop")
    sagemaker_layout(base, prepared, {"num_round": "1000000", "early_stopping_rounds": "0", "eta": "0.01"})
    docker(
        "run", "-d", "--name", container_name, "--network", "none",
        "-v", f"{base / 'input'}:/opt/ml/input:ro",
        "-v", f"{base / 'model'}:/opt/ml/model",
        "-v", f"{base / 'output'}:/opt/ml/output",
        image, "train",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while "training with" not in docker("logs", container_name).stderr:
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.5)
    time.sleep(1.0)

    started = time.monotonic()
    docker("stop", "-t", "30", container_name, timeout=60)
    elapsed = time.monotonic() - started

    assert docker("inspect", "-f", "{{.State.ExitCode}}", container_name).stdout.strip() == "143"
    assert elapsed < 10
    assert "stopped by signal SIGTERM" in (base / "output" / "failure").read_text()
