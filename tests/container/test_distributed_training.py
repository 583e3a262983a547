"""The churn training as a 2-instance SageMaker training job in the SDK's local mode, on the real data.

Two containers of the kubesage image, started by the SageMaker SDK's local mode (docker-compose) from
a CreateTrainingJob request with InstanceCount=2, each with its own resourceconfig.json. Networking:
kubesage puts local-mode jobs on the host's network (runners/sagemaker/local_mode.py) so they reach
MLflow on the host's 127.0.0.1; both hosts then share one network namespace, where the compose
aliases (algo-1-xxxxx) do not resolve, so the tracker's address is given as 127.0.0.1
(KUBESAGE_TRACKER_HOST) and the first host's tracker listens there. Local mode mounts the whole train
channel on both hosts (it refuses ShardedByS3Key), so each host takes the part files at its rank.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from kubesage.churn.modelio import Daal4pyModel, booster_probabilities, load_booster
from kubesage.components import distributed
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.shards import split_csv
from kubesage.image.train import TrainingPaths, main
from kubesage.runners.sagemaker.local_training import run_training_job
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.container

HYPERPARAMETERS = {"num_round": "200", "early_stopping_rounds": "10", "seed": "42"}
EXPERIMENT = "kubesage-distributed-test"


def rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def single_instance_auc(prepared: dict[str, Path], base: Path) -> float:
    """The same training, data and seed on one instance (the image's own entry, without Docker)."""
    paths = TrainingPaths(base)
    for channel, source in (("train", prepared["train"]), ("validation", prepared["validation"])):
        paths.channel(channel).mkdir(parents=True)
        (paths.channel(channel) / source.name).write_bytes(source.read_bytes())
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(HYPERPARAMETERS))
    assert main(base) == 0
    test = read_labelled_csv(prepared["test"])
    return float(roc_auc_score(test.labels, booster_probabilities(load_booster(paths.model_dir), test.features)))


def test_two_instance_local_mode_job_trains_one_model(
    image: str, prepared: dict[str, Path], shared_mlflow: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = tmp_path / "channels"
    parts = split_csv(prepared["train"], channels / "train", 4)
    for name, source in (("validation", prepared["validation"]), ("schema", prepared["schema"])):
        (channels / name).mkdir(parents=True)
        (channels / name / source.name).write_bytes(source.read_bytes())
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)  # the SDK's session wants some; nothing here calls AWS

    job = run_training_job(
        image,
        {name: channels / name for name in ("train", "validation", "schema")},
        HYPERPARAMETERS,
        tmp_path / "out",
        instance_count=2,
        environment={distributed.ENV_MLFLOW_URI: shared_mlflow.url, distributed.ENV_MLFLOW_EXPERIMENT: EXPERIMENT},
    )

    # The MLflow run the first host recorded: two instances, two distinct non-empty shards.
    client = MlflowClient(shared_mlflow.url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`kubesage.job` = '{job.name}'")
    metrics = run.data.metrics
    assert metrics["instance_count"] == 2 and run.data.params["instance_count"] == "2"
    hosts = run.data.tags["kubesage.hosts"].split(",")
    assert len(hosts) == 2 and hosts[0].startswith("algo-1-") and hosts[1].startswith("algo-2-")
    shard_rows = {h: metrics[f"shard_rows_{h}"] for h in hosts}
    assert shard_rows == {hosts[0]: rows(parts[0]) + rows(parts[2]), hosts[1]: rows(parts[1]) + rows(parts[3])}
    assert min(shard_rows.values()) > 0 and sum(shard_rows.values()) == rows(prepared["train"])

    # The job's model: as good as one instance's, and it loads and predicts through daal4py.
    booster = load_booster(job.model_dir)
    test = read_labelled_csv(prepared["test"])
    probabilities = booster_probabilities(booster, test.features)
    together = float(roc_auc_score(test.labels, probabilities))
    alone = single_instance_auc(prepared, tmp_path / "single")
    assert abs(together - alone) <= 0.005, (together, alone)
    daal = Daal4pyModel.from_booster(booster).probabilities(test.features)
    assert np.max(np.abs(daal - probabilities)) < 1e-6
