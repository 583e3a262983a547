"""Two training hosts on loopback, without Docker: XGBoost's own tracker and collective, the real data.

Each host is its own process with its own SageMaker layout (resourceconfig.json naming both hosts), as
in a 2-instance training job; only the tracker's address is moved to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from kubesage.churn.modelio import MODEL_FILENAME, booster_probabilities, load_booster
from kubesage.components import distributed
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.distributed import Cluster
from kubesage.components.shards import split_csv
from kubesage.errors import ClusterError
from kubesage.image.train import ENV_BASE, TrainingPaths, main
from kubesage.util.ports import free_port

HOSTS = ("algo-1", "algo-2")
HYPERPARAMETERS = {"num_round": "200", "early_stopping_rounds": "10"}


def lay_out_host(base: Path, prepared: dict[str, Path], shards: list[Path], host: str | None) -> TrainingPaths:
    """One host's /opt/ml: the whole (replicated) train channel, as SageMaker local mode mounts it."""
    paths = TrainingPaths(base)
    train = paths.channel("train")
    train.mkdir(parents=True)
    for shard in shards:
        shutil.copy(shard, train)
    for channel, source in (("validation", prepared["validation"]), ("schema", prepared["schema"])):
        paths.channel(channel).mkdir(parents=True)
        shutil.copy(source, paths.channel(channel))
    paths.config_dir.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(HYPERPARAMETERS))
    if host is not None:
        resource = {"current_host": host, "hosts": list(HOSTS)}
        (paths.config_dir / "resourceconfig.json").write_text(json.dumps(resource))
    return paths


def test_auc(model_dir: Path, test_csv: Path) -> float:
    test = read_labelled_csv(test_csv)
    return float(roc_auc_score(test.labels, booster_probabilities(load_booster(model_dir), test.features)))


test_auc.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def run_hosts(bases: list[Path], port: int) -> list[subprocess.CompletedProcess[str]]:
    # One OpenMP thread per process: both share this machine's cores, and busy-waiting threads of one
    # host would hold up the other's allreduce (runners/sagemaker/local_training.py, threads_per_host).
    env = {
        **os.environ,
        distributed.ENV_TRACKER_HOST: "127.0.0.1",
        distributed.ENV_TRACKER_PORT: str(port),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "kubesage.image", "train"]
    procs = start_tracker_host_first([(command, {**env, ENV_BASE: str(base)}) for base in bases], port)
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.communicate()[0]) for p in procs]


def start_tracker_host_first(hosts: list[tuple[list[str], dict[str, str]]], port: int) -> list[subprocess.Popen[str]]:
    """Start the first host (it runs the tracker), and the others once the tracker listens on `port`.

    Started at once, a host that reaches the collective before the tracker listens is refused, and
    XGBoost retries after 2 s, then 4 s: a third of the runs idled 6 s on loopback. On SageMaker that
    retry is what a late tracker host needs; here it would only make the test's time a coin toss."""

    def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = start(*hosts[0])
    deadline = time.monotonic() + 300
    while not listening(port) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return [first, *(start(*host) for host in hosts[1:])]


def listening(port: int) -> bool:
    """Whether a TCP socket of this machine listens on `port` (Linux's socket tables: no connection
    is made, which the tracker would take for a worker)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), Path(table).open(encoding="ascii") as sockets:
            next(sockets)  # the header
            for line in sockets:
                _slot, local, _remote, state = line.split()[:4]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    return True
    return False


@pytest.fixture(scope="module")
def shards(prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return split_csv(prepared["train"], tmp_path_factory.mktemp("shards"), 4)


def test_two_hosts_train_one_model_as_good_as_one(
    prepared: dict[str, Path], shards: list[Path], tmp_path: Path
) -> None:
    single = lay_out_host(tmp_path / "single", prepared, shards, host=None)
    assert main(single.base) == 0
    hosts = [lay_out_host(tmp_path / host, prepared, shards, host) for host in HOSTS]

    runs = run_hosts([h.base for h in hosts], free_port())

    assert [r.returncode for r in runs] == [0, 0], "\n".join(r.stdout for r in runs)
    # Only the first host wrote the model; the second's /opt/ml/model stays empty.
    assert (hosts[0].model_dir / MODEL_FILENAME).is_file()
    assert not hosts[1].model_dir.exists() or not any(hosts[1].model_dir.iterdir())
    metrics = [json.loads(h.metrics_file.read_text()) for h in hosts]
    # Both hosts trained, on distinct non-empty shards (files 0,2 and 1,3) that together are the split.
    expected = {"algo-1": sum(count(s) for s in shards[0::2]), "algo-2": sum(count(s) for s in shards[1::2])}
    for m in metrics:
        assert m["instance_count"] == 2
        assert {h: m[f"shard_rows_{h}"] for h in HOSTS} == expected
    assert min(expected.values()) > 0 and sum(expected.values()) == count(prepared["train"])
    # One model: both hosts saw the same boosting rounds and validation AUC from the collective.
    assert metrics[0]["best_iteration"] == metrics[1]["best_iteration"]
    assert metrics[0]["validation_auc"] == metrics[1]["validation_auc"]
    assert f"(rank 1 of 2): {expected['algo-2']} rows" in runs[1].stdout
    together = test_auc(hosts[0].model_dir, prepared["test"])
    alone = test_auc(single.model_dir, prepared["test"])
    assert abs(together - alone) <= 0.005, (together, alone)


def count(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_a_host_without_data_leaves_and_the_other_trains(
    prepared: dict[str, Path], shards: list[Path], tmp_path: Path
) -> None:
    # One file in a replicated channel: rank 0 takes it, rank 1 has nothing.
    hosts = [lay_out_host(tmp_path / host, prepared, shards[:1], host) for host in HOSTS]

    runs = run_hosts([h.base for h in hosts], free_port())

    assert [r.returncode for r in runs] == [0, 0], "\n".join(r.stdout for r in runs)
    assert "host algo-2 has no training rows" in runs[1].stdout
    assert (hosts[0].model_dir / MODEL_FILENAME).is_file()
    assert json.loads(hosts[0].metrics_file.read_text())["shard_rows_algo-2"] == 0


def test_shards_by_rank_unless_sagemaker_sharded() -> None:
    files = [Path(f"part-{i}.csv") for i in range(5)]
    second = Cluster(HOSTS, "algo-2")
    assert distributed.shard_files(files, second, distributed.FULLY_REPLICATED) == tuple(files[1::2])
    assert distributed.shard_files(files, second, distributed.SHARDED_BY_S3_KEY) == tuple(files)


def test_hosts_come_sorted_from_resourceconfig(tmp_path: Path) -> None:
    (tmp_path / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-2", "algo-1"]}))
    assert distributed.read_cluster(tmp_path) == Cluster(("algo-1", "algo-2"), "algo-1")
    with pytest.raises(ClusterError, match="current host 'algo-3' is not among"):
        Cluster(HOSTS, "algo-3")


def test_split_csv_writes_near_equal_files(prepared: dict[str, Path], tmp_path: Path) -> None:
    parts = split_csv(prepared["train"], tmp_path, 3)
    sizes = [count(p) for p in parts]
    assert sum(sizes) == count(prepared["train"]) and max(sizes) - min(sizes) <= 1
    assert b"".join(p.read_bytes() for p in parts) == prepared["train"].read_bytes()


def test_preprocess_writes_the_train_split_as_shards_the_trainer_reads_as_one(
    churn_csv: Path, prepared: dict[str, Path], tmp_path: Path
) -> None:
    from kubesage.components.preprocess import preprocess
    from kubesage.components.shards import one_csv

    paths = {name: tmp_path / name for name in ("train", "validation", "test")}
    result = preprocess(str(churn_csv), dict(paths), tmp_path / "schema.json", seed=42, train_shards=3)

    parts = sorted(paths["train"].iterdir())
    assert [p.name for p in parts] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    assert sum(count(p) for p in parts) == result.rows["train"] == count(prepared["train"])
    # The same rows as the one-file split of the same seed, in the same order.
    assert one_csv(paths["train"], tmp_path / "work").read_bytes() == prepared["train"].read_bytes()


# The pipeline's train component on a host of a multi-instance job: train_step, as the shim runs it.
TRAIN_STEP = """
import json, sys
from kubesage.components.steps import train_step
from kubesage.components.train import TrainParams
train, validation, schema, model = sys.argv[1:5]
metrics = train_step(train, validation, schema, model, TrainParams(num_round=200, early_stopping_rounds=10))
print("METRICS " + json.dumps(metrics))
"""


def test_the_pipeline_train_step_trains_across_hosts(
    prepared: dict[str, Path], shards: list[Path], tmp_path: Path
) -> None:
    # The train split as preprocess writes it for 2 instances: a folder of 2 part files, on both hosts.
    train = tmp_path / "train"
    train.mkdir()
    for shard in shards[:2]:
        shutil.copy(shard, train)
    port = free_port()
    arguments = [str(train), str(prepared["validation"]), str(prepared["schema"])]
    hosts = [
        (
            [sys.executable, "-c", TRAIN_STEP, *arguments, str(tmp_path / host / "model")],
            {
                **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
                "SM_HOSTS": json.dumps(list(HOSTS)),
                "SM_CURRENT_HOST": host,
                distributed.ENV_TRACKER_HOST: "127.0.0.1",
                distributed.ENV_TRACKER_PORT: str(port),
                "OMP_NUM_THREADS": "1",
            },
        )
        for host in HOSTS
    ]
    procs = start_tracker_host_first(hosts, port)
    runs = [(p.wait(timeout=300), p.communicate()[0]) for p in procs]

    assert [code for code, _ in runs] == [0, 0], "\n".join(out for _, out in runs)
    metrics = [json.loads(out.split("METRICS ", 1)[1]) for _, out in runs]
    expected = {"algo-1": count(shards[0]), "algo-2": count(shards[1])}
    for m in metrics:
        assert m["instance_count"] == 2
        assert {h: m[f"shard_rows_{h}"] for h in HOSTS} == expected
    assert min(expected.values()) > 0
    assert metrics[0]["best_iteration"] == metrics[1]["best_iteration"]
    # One model, written by the first host only (SageMaker merges every host's /opt/ml/model).
    assert (tmp_path / "algo-1" / "model" / MODEL_FILENAME).is_file()
    assert not (tmp_path / "algo-2" / "model").exists() or not any((tmp_path / "algo-2" / "model").iterdir())


def test_channel_of_a_sagemaker_path() -> None:
    assert distributed.channel_of(Path("/opt/ml/input/data/train_data/train")) == "train_data"
    assert distributed.channel_of(Path("/tmp/train")) == ""
