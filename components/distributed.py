"""One model from several training instances: SageMaker's host list + XGBoost's own tracker and collective.

A multi-instance SageMaker training job starts the same container on every host and writes each one a
resourceconfig.json naming all hosts and the current one. As in SageMaker's built-in XGBoost container
(aws/sagemaker-xgboost-container, distributed.py), the hosts are sorted and the first runs XGBoost's
RabitTracker; every host joins the collective with its index as task id, so XGBoost's rank is the
host's index. Inside the collective, `xgb.train` builds each histogram from every host's rows, so one
model comes out; only rank 0 writes it.

Shards: with `ShardedByS3Key` SageMaker gives each host its own files; with `FullyReplicated` (and in
SageMaker local mode, which always mounts the whole channel) every host sees every file, so each takes
the files at its rank (`files[rank::hosts]`). Before training, the hosts share their shard sizes; hosts
with no rows leave cleanly and the rest train in a new group without them.

No pickle crosses hosts: shard sizes travel as an int64 allreduce.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kubesage.components.shards import concatenate, csv_files
from kubesage.errors import ClusterError, DataError

if TYPE_CHECKING:
    from kubesage.churn.features import FeatureSchema
    from kubesage.components.train import TrainParams, TrainResult

logger = logging.getLogger(__name__)

# SageMaker's built-in XGBoost uses 9099 for its tracker; every host of a job shares one network.
DEFAULT_TRACKER_PORT = 9099
# Overrides for running several workers on one machine (the loopback test): where the tracker is.
ENV_TRACKER_HOST = "KUBESAGE_TRACKER_HOST"
ENV_TRACKER_PORT = "KUBESAGE_TRACKER_PORT"
# SageMaker starts the hosts' containers at about the same time, not at once: DNS names of other
# hosts appear within seconds. Past this, a host is not coming and the job must fail, saying which.
HOST_WAIT_SECONDS = 300.0
# Rabit's own retries of a refused connection (the tracker's host may still be starting).
COMMUNICATOR_RETRY = 30
# Seconds the communicator waits on a silent peer before failing: a dead host fails the others.
COMMUNICATOR_TIMEOUT_SECONDS = 600
FULLY_REPLICATED = "FullyReplicated"
SHARDED_BY_S3_KEY = "ShardedByS3Key"
# Where a SageMaker training job describes itself (resourceconfig.json, inputdataconfig.json) and
# puts its channels, one folder each.
SAGEMAKER_CONFIG = Path("/opt/ml/input/config")
SAGEMAKER_DATA = Path("/opt/ml/input/data")


@dataclass(frozen=True)
class Cluster:
    """The hosts of one training job, sorted, and which one this process is."""

    hosts: tuple[str, ...]
    current_host: str

    def __post_init__(self) -> None:
        if self.current_host not in self.hosts:
            raise ClusterError(
                f"current host {self.current_host!r} is not among the job's hosts {list(self.hosts)}; "
                "check resourceconfig.json (or SM_HOSTS / SM_CURRENT_HOST)"
            )

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def leader(self) -> str:
        return self.hosts[0]

    def without(self, hosts: Sequence[str]) -> Cluster:
        """The same job minus `hosts` (hosts that have no data); the current host must stay."""
        return Cluster(tuple(h for h in self.hosts if h not in hosts), self.current_host)


@dataclass(frozen=True)
class Shard:
    """What one host trains on."""

    host: str
    files: tuple[Path, ...]
    rows: int


def read_cluster(config_dir: Path) -> Cluster:
    """The job's hosts: resourceconfig.json, else SM_HOSTS/SM_CURRENT_HOST, else this host alone."""
    resource = config_dir / "resourceconfig.json"
    if resource.is_file():
        try:
            data = json.loads(resource.read_text(encoding="utf-8"))
            hosts, current = data["hosts"], data["current_host"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ClusterError(f"{resource} must hold 'hosts' and 'current_host': {exc}") from exc
        return Cluster(tuple(sorted(hosts)), str(current))
    if "SM_HOSTS" in os.environ and "SM_CURRENT_HOST" in os.environ:
        return Cluster(tuple(sorted(json.loads(os.environ["SM_HOSTS"]))), os.environ["SM_CURRENT_HOST"])
    return Cluster((socket.gethostname(),), socket.gethostname())


def channel_distribution(config_dir: Path, channel: str) -> str:
    """The channel's S3DistributionType from inputdataconfig.json (FullyReplicated when not said)."""
    path = config_dir / "inputdataconfig.json"
    if not path.is_file():
        return FULLY_REPLICATED
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ClusterError(f"{path} is not valid JSON: {exc}") from exc
    return str(config.get(channel, {}).get("S3DistributionType", FULLY_REPLICATED))


def channel_of(path: Path, data_root: Path = SAGEMAKER_DATA) -> str:
    """The input channel `path` lies in (`<data_root>/<channel>/...`); "" when it is in none."""
    try:
        relative = path.relative_to(data_root)
    except ValueError:
        return ""
    return relative.parts[0] if relative.parts else ""


def shard_files(files: Sequence[Path], cluster: Cluster, distribution: str) -> tuple[Path, ...]:
    """This host's files: all of them when SageMaker already sharded the channel, else the rank's."""
    if cluster.size == 1 or distribution == SHARDED_BY_S3_KEY:
        return tuple(files)
    return tuple(files[cluster.rank :: cluster.size])


def count_rows(files: Sequence[Path]) -> int:
    total = 0
    for path in files:
        with path.open("rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def tracker_address(cluster: Cluster) -> tuple[str, int]:
    """Host and port of the tracker: the first host, port 9099, unless the environment says otherwise."""
    host = os.environ.get(ENV_TRACKER_HOST) or cluster.leader
    port = int(os.environ.get(ENV_TRACKER_PORT) or DEFAULT_TRACKER_PORT)
    return host, port


def resolve_host(host: str, timeout: float = HOST_WAIT_SECONDS) -> str:
    """The host's IP address, waiting for its DNS name to appear (hosts start at different times)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"host {host!r} of this training job did not resolve within {timeout:.0f} s ({exc}); "
                    "the other instances did not start, or are not on this host's network"
                ) from exc
            time.sleep(1.0)


@contextmanager
def collective(cluster: Cluster, port_offset: int = 0) -> Iterator[None]:
    """Join XGBoost's collective with every host of `cluster` (the first host also runs the tracker).

    Inside, XGBoost's training and allreduce span all hosts. The ranks follow the host order: each
    host's task id is its zero-padded index and the tracker sorts by task.
    """
    from xgboost import collective as coll
    from xgboost.tracker import RabitTracker

    host, port = tracker_address(cluster)
    port += port_offset
    address = resolve_host(host)
    tracker = None
    if cluster.rank == 0:
        tracker = RabitTracker(
            n_workers=cluster.size, host_ip=address, port=port, sortby="task", timeout=int(HOST_WAIT_SECONDS)
        )
        tracker.start()
        logger.info("tracker for %d hosts listening on %s:%d", cluster.size, address, port)
    args: dict[str, int | str | None] = {
        "dmlc_tracker_uri": address,
        "dmlc_tracker_port": port,
        "dmlc_task_id": f"{cluster.rank:06d}",
        "dmlc_retry": COMMUNICATOR_RETRY,
        "dmlc_timeout": COMMUNICATOR_TIMEOUT_SECONDS,
    }
    try:
        with coll.CommunicatorContext(**args):
            if coll.get_rank() != cluster.rank or coll.get_world_size() != cluster.size:
                raise ClusterError(
                    f"XGBoost gave host {cluster.current_host} rank {coll.get_rank()} of "
                    f"{coll.get_world_size()}, expected {cluster.rank} of {cluster.size}"
                )
            yield
    finally:
        if tracker is not None:
            tracker.wait_for(int(HOST_WAIT_SECONDS))
            tracker.free()


def share_rows(cluster: Cluster, rows: int) -> tuple[int, ...]:
    """Every host's shard size, on every host (an allreduce of one-hot counts: no pickle)."""
    from xgboost import collective as coll

    mine = np.zeros(cluster.size, dtype=np.int64)
    mine[cluster.rank] = rows
    return tuple(int(n) for n in coll.allreduce(mine, coll.Op.SUM))


def hosts_without_data(cluster: Cluster, rows: Sequence[int]) -> tuple[str, ...]:
    return tuple(host for host, n in zip(cluster.hosts, rows, strict=True) if n == 0)


def require_some_data(cluster: Cluster, rows: Sequence[int], channel: Path) -> None:
    if not any(rows):
        raise DataError(
            f"no host of this {cluster.size}-instance job has training rows in {channel}; "
            "give the train channel at least one non-empty CSV"
        )


@dataclass(frozen=True)
class ClusterTraining:
    """What one host did in a multi-instance job: its shard, every host's shard size, the result."""

    cluster: Cluster
    shard: Shard
    rows_per_host: dict[str, int]
    wrote_model: bool
    result: TrainResult | None  # None: this host had no rows and left before training

    def metrics(self) -> dict[str, float]:
        """The cluster's shape for metrics.json and MLflow: instance count and each host's shard size."""
        out = {"instance_count": float(self.cluster.size)}
        out.update({f"shard_rows_{host}": float(n) for host, n in self.rows_per_host.items()})
        if self.result is not None:
            out.update(self.result.metrics())
        return out


def train_on_cluster(
    cluster: Cluster,
    train_dir: Path,
    validation_dir: Path,
    params: TrainParams,
    model_dir: Path,
    work_dir: Path,
    finish: Callable[[ClusterTraining], None],
    *,
    distribution: str = FULLY_REPLICATED,
    schema: FeatureSchema | None = None,
) -> ClusterTraining:
    """Train one model across the cluster's hosts, each on its shard; only rank 0 writes `model_dir`.

    `finish` (metrics, the MLflow run) runs on every host that trained, before any host leaves the
    collective: local mode's docker-compose stops every container as soon as one exits, so a host
    that finished first would otherwise cut the first host's MLflow call short.
    """
    from kubesage.components.train import train_from_csv

    mine = shard_files(csv_files(train_dir), cluster, distribution)
    shard = Shard(cluster.current_host, mine, count_rows(mine))
    logger.info("host %s (rank %d of %d): %d rows in %d file(s)", shard.host, cluster.rank, cluster.size,
                shard.rows, len(mine))  # fmt: skip
    shard_csv = concatenate(mine, work_dir / "shard.csv") if shard.rows else None
    # Another host's model directory is thrown away: SageMaker keeps the first host's.
    target = model_dir if cluster.rank == 0 else work_dir / "model"
    with collective(cluster):
        rows = share_rows(cluster, shard.rows)
        require_some_data(cluster, rows, train_dir)
        by_host = dict(zip(cluster.hosts, rows, strict=True))
        empty = hosts_without_data(cluster, rows)
        if not empty:
            result = train_from_csv(shard_csv or train_dir, validation_dir, params, target, schema=schema)
            done = ClusterTraining(cluster, shard, by_host, cluster.rank == 0, result)
            finish_together(done, finish)
            return done
    if shard_csv is None:
        # As SageMaker's XGBoost container does: a host with no data leaves, and the job goes on.
        logger.info("host %s has no training rows; leaving the job to %d other host(s)", shard.host,
                    cluster.size - len(empty))  # fmt: skip
        return ClusterTraining(cluster, shard, by_host, False, None)
    group = cluster.without(empty)
    # The first host may have been the one without data: the model goes wherever rank 0 now is.
    target = model_dir if group.rank == 0 else work_dir / "model"
    if group.size == 1:
        done = ClusterTraining(cluster, shard, by_host, True,
                               train_from_csv(shard_csv, validation_dir, params, target, schema=schema))  # fmt: skip
        finish(done)
        return done
    with collective(group, port_offset=1):
        result = train_from_csv(shard_csv, validation_dir, params, target, schema=schema)
        done = ClusterTraining(cluster, shard, by_host, group.rank == 0, result)
        finish_together(done, finish)
    return done


def finish_together(done: ClusterTraining, finish: Callable[[ClusterTraining], None]) -> None:
    """`finish` on this host, then wait until every host of the collective has finished too."""
    from xgboost import collective as coll

    finish(done)
    coll.allreduce(np.zeros(1, dtype=np.int64), coll.Op.SUM)


ENV_MLFLOW_URI = "MLFLOW_TRACKING_URI"
ENV_MLFLOW_EXPERIMENT = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "kubesage-distributed-training"


def track(done: ClusterTraining, params: TrainParams, job_name: str | None) -> str | None:
    """Record the job in MLflow (when MLFLOW_TRACKING_URI is set) from the host that wrote the model:
    the hyperparameters, the instance count and each host's shard size, the training metrics."""
    if not done.wrote_model or not os.environ.get(ENV_MLFLOW_URI):
        return None
    from dataclasses import asdict

    import mlflow

    mlflow.set_experiment(os.environ.get(ENV_MLFLOW_EXPERIMENT) or DEFAULT_EXPERIMENT)
    with mlflow.start_run(run_name=job_name or f"train-{done.cluster.size}-instances") as run:
        mlflow.log_params({**asdict(params), "instance_count": done.cluster.size})
        mlflow.log_metrics(done.metrics())
        mlflow.set_tags({"kubesage.hosts": ",".join(done.cluster.hosts), "kubesage.job": job_name or ""})
        return str(run.info.run_id)
