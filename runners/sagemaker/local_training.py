"""One SageMaker training job of the kubesage image in the SDK's local mode, on one or more instances.

A CreateTrainingJob request to the SDK's local client: local folders as `file://` channels, the
image's own `train` entry, `instance_count` containers started by docker-compose, each with its own
resourceconfig.json. The containers join the host's network, as every kubesage local-mode job does
(local_mode.py: that is how they reach MLflow on the host's 127.0.0.1). On the host network all hosts
share one network namespace and the compose aliases (algo-1-xxxxx) do not resolve, so the XGBoost
tracker's address is given to the image as 127.0.0.1 on a free port (local_cluster.py).
Local mode mounts every channel whole on every host (it refuses ShardedByS3Key): each host trains on
the train files at its rank (components/distributed.py).
"""

from __future__ import annotations

import subprocess
import tarfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker.local_cluster import cluster_environment
from kubesage.runners.sagemaker.local_mode import RUN_LABEL, host_network_config, prepare_sdk_local_mode


@dataclass(frozen=True)
class LocalTrainingJob:
    name: str
    instance_count: int
    seconds: float  # wall time of the whole job: compose up, every container, artifacts
    model_dir: Path  # model.tar.gz unpacked


def run_training_job(
    image: str,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, str],
    output: Path,
    *,
    instance_count: int = 1,
    environment: Mapping[str, str] | None = None,
    name: str | None = None,
) -> LocalTrainingJob:
    """Run the job to its end; a failed job raises RunnerError (the SDK's own error as the cause)."""
    from sagemaker.core.local.local_session import LocalSession

    from kubesage.util.boto_sessions import new_boto3_session

    run_id = uuid.uuid4().hex[:12]
    job = name or f"kubesage-train-{instance_count}x-{run_id}"
    prepare_sdk_local_mode()
    session = LocalSession(boto_session=new_boto3_session(region_name="us-east-1"))
    session.config = host_network_config(session.config, run_id)
    env = {**cluster_environment(instance_count), **(environment or {})}
    started = time.perf_counter()
    try:
        session.sagemaker_client.create_training_job(
            TrainingJobName=job,
            AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"file://{output}"},
            ResourceConfig={"InstanceType": "local", "InstanceCount": instance_count, "VolumeSizeInGB": 1},
            InputDataConfig=[file_channel(name, path) for name, path in channels.items()],
            HyperParameters=dict(hyperparameters),
            Environment=env,
        )
    except Exception as exc:
        raise RunnerError(f"local training job {job} on {instance_count} instance(s) failed: {exc}") from exc
    finally:
        remove_containers(run_id)
    seconds = time.perf_counter() - started
    return LocalTrainingJob(job, instance_count, seconds, unpack_model(output, job))


def file_channel(name: str, directory: Path) -> dict[str, object]:
    source = {"FileDataDistributionType": "FullyReplicated", "FileUri": f"file://{directory}"}
    return {"ChannelName": name, "DataSource": {"FileDataSource": source}}


def unpack_model(output: Path, job: str) -> Path:
    archives = sorted(output.rglob("model.tar.gz"))
    if not archives:
        raise RunnerError(f"local training job {job} left no model.tar.gz under {output}")
    target = output / "model"
    with tarfile.open(archives[-1]) as tar:
        tar.extractall(target, filter="data")
    return target


def remove_containers(run_id: str) -> None:
    """The job's containers (compose leaves stopped ones behind), by this job's label only."""
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}"], capture_output=True, text=True, check=False
    ).stdout.split()
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=False)
