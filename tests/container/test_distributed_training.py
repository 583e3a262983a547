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
import tarfile
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from kubesage.churn.modelio import Daal4pyModel, booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.shards import split_csv
from kubesage.image import distributed
from kubesage.image.train import TrainingPaths, main
from kubesage.runners.sagemaker.local_mode import RUN_LABEL, _allow_host_network, host_network_config
from tests.container.conftest import docker
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.container

HYPERPARAMETERS = {"num_round": "200", "early_stopping_rounds": "10", "seed": "42"}
EXPERIMENT = "kubesage-distributed-test"


def file_channel(name: str, directory: Path) -> dict[str, Any]:
    source = {"FileDataDistributionType": "FullyReplicated", "FileUri": f"file://{directory}"}
    return {"ChannelName": name, "DataSource": {"FileDataSource": source}}


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
    image: str,
    prepared: dict[str, Path],
    shared_mlflow: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sagemaker.core.local.local_session import LocalSession

    from kubesage.util.ports import free_port

    channels = tmp_path / "channels"
    parts = split_csv(prepared["train"], channels / "train", 4)
    for name in ("validation",):
        (channels / name).mkdir(parents=True)
        (channels / name / "validation.csv").write_bytes(prepared[name].read_bytes())
    (channels / "schema").mkdir()
    (channels / "schema" / "feature_schema.json").write_bytes(prepared["schema"].read_bytes())
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    run_id = uuid.uuid4().hex[:12]
    _allow_host_network()
    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1"))
    session.config = host_network_config(session.config, run_id)  # as run_local does
    job = f"churn-2x-{run_id}"
    try:
        session.sagemaker_client.create_training_job(
            TrainingJobName=job,
            AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"file://{tmp_path / 'out'}"},
            ResourceConfig={"InstanceType": "local", "InstanceCount": 2, "VolumeSizeInGB": 1},
            InputDataConfig=[file_channel(n, channels / n) for n in ("train", "validation", "schema")],
            HyperParameters=HYPERPARAMETERS,
            Environment={
                distributed.ENV_TRACKER_HOST: "127.0.0.1",
                distributed.ENV_TRACKER_PORT: str(free_port()),
                distributed.ENV_MLFLOW_URI: shared_mlflow.url,
                distributed.ENV_MLFLOW_EXPERIMENT: EXPERIMENT,
            },
        )
    finally:
        leftovers = docker("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout.split()
        if leftovers:
            docker("rm", "-f", *leftovers, check=False)

    # The MLflow run the first host recorded: two instances, two distinct non-empty shards.
    client = MlflowClient(shared_mlflow.url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`kubesage.job` = '{job}'")
    metrics = run.data.metrics
    assert metrics["instance_count"] == 2 and run.data.params["instance_count"] == "2"
    hosts = run.data.tags["kubesage.hosts"].split(",")
    assert len(hosts) == 2 and hosts[0].startswith("algo-1-") and hosts[1].startswith("algo-2-")
    shard_rows = {h: metrics[f"shard_rows_{h}"] for h in hosts}
    assert shard_rows == {hosts[0]: rows(parts[0]) + rows(parts[2]), hosts[1]: rows(parts[1]) + rows(parts[3])}
    assert min(shard_rows.values()) > 0 and sum(shard_rows.values()) == rows(prepared["train"])

    # The job's model: as good as one instance's, and it loads and predicts through daal4py.
    (archive,) = (tmp_path / "out").rglob("model.tar.gz")
    model_dir = tmp_path / "model"
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    booster = load_booster(model_dir)
    test = read_labelled_csv(prepared["test"])
    probabilities = booster_probabilities(booster, test.features)
    together = float(roc_auc_score(test.labels, probabilities))
    alone = single_instance_auc(prepared, tmp_path / "single")
    assert abs(together - alone) <= 0.005, (together, alone)
    daal = Daal4pyModel.from_booster(booster).probabilities(test.features)
    assert np.max(np.abs(daal - probabilities)) < 1e-6
