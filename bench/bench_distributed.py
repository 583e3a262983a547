"""Rows vs time for a churn training job on 1 and 2 instances in SageMaker local mode (Docker).

The real churn data's train split, repeated to grow the row count (repeats of real rows: the timing
is about rows, not about model quality), written as 4 part files; the same job on one instance and
on two (runners/sagemaker/local_training.py). Prints the job's wall time (containers started,
trained, artifacts collected) and the training time XGBoost itself took, as the first host logged it.
On this machine both containers share the same two cores, so two instances cannot be faster here:
the table shows what the collective costs, not what a second machine would give.

    flock /tmp/kubesage-docker.lock .venv/bin/python bench/bench_distributed.py [--repeats 1,10]
    .venv/bin/python bench/bench_distributed.py --mode loopback   # processes on 127.0.0.1, no Docker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubesage.components.preprocess import preprocess
from kubesage.components.shards import split_csv
from kubesage.runners.sagemaker.local_cluster import ENV_TRACKER_HOST, ENV_TRACKER_PORT, OMP_THREADS, threads_per_host
from kubesage.runners.sagemaker.local_training import run_training_job
from kubesage.util.ports import free_port

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "churn.txt"
IMAGE = os.environ.get("KUBESAGE_IMAGE", "kubesage/xgboost-daal4py:latest")
HYPERPARAMETERS = {"num_round": "100", "early_stopping_rounds": "0", "seed": "42"}


def prepare(work: Path, repeats: int) -> tuple[dict[str, Path], int]:
    splits = {name: work / "splits" / f"{name}.csv" for name in ("train", "validation", "test")}
    if not splits["train"].exists():
        preprocess(str(DATA), dict(splits), work / "splits" / "feature_schema.json", seed=42)
    big = work / f"train-x{repeats}.csv"
    big.write_bytes(splits["train"].read_bytes() * repeats)
    channels = work / f"x{repeats}"
    split_csv(big, channels / "train", 4)
    (channels / "validation").mkdir(parents=True)
    (channels / "validation" / "validation.csv").write_bytes(splits["validation"].read_bytes())
    rows = sum(1 for _ in big.open("rb"))
    return {"train": channels / "train", "validation": channels / "validation"}, rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", default="1,10")
    parser.add_argument("--mode", choices=("local-mode", "loopback"), default="local-mode")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    print(f"{args.mode}: | train rows | instances | job wall s | xgboost train s (first host) |")
    print("| ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        work = Path(tmp)
        for repeats in (int(r) for r in args.repeats.split(",")):
            channels, rows = prepare(work, repeats)
            for count in (1, 2):
                out = work / f"out-{repeats}-{count}"
                if args.mode == "loopback":
                    seconds, metrics = loopback_job(channels, out, count)
                else:
                    job = run_training_job(IMAGE, channels, HYPERPARAMETERS, out, instance_count=count)
                    seconds, metrics = job.seconds, read_metrics(out)
                train = metrics.get("train_seconds", float("nan"))
                print(f"| {rows:,} | {count} | {seconds:.1f} | {train:.2f} |")
                sys.stdout.flush()
    return 0


def loopback_job(channels: dict[str, Path], out: Path, count: int) -> tuple[float, dict[str, float]]:
    """The image's train entry as `count` processes here, each with its own SageMaker layout."""
    hosts = [f"algo-{i + 1}" for i in range(count)]
    env = {
        **os.environ,
        ENV_TRACKER_HOST: "127.0.0.1",
        ENV_TRACKER_PORT: str(free_port()),
        OMP_THREADS: str(threads_per_host(count)),
    }
    bases = []
    for host in hosts:
        base = out / host
        config = base / "input" / "config"
        config.mkdir(parents=True)
        (config / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
        (config / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
        for name, path in channels.items():
            (base / "input" / "data").mkdir(parents=True, exist_ok=True)
            (base / "input" / "data" / name).symlink_to(path)
        bases.append(base)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kubesage.image", "train"],
            env={**env, "KUBESAGE_SM_BASE": str(base)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for base in bases
    ]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"loopback job on {count} host(s) failed: exit codes {codes}")
    return seconds, dict(json.loads((bases[0] / "output" / "data" / "metrics.json").read_text()))


def read_metrics(out: Path) -> dict[str, float]:
    """metrics.json from the job's output.tar.gz (the hosts' output/data, merged by local mode)."""
    import tarfile

    (archive,) = out.rglob("output.tar.gz")
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("metrics.json"))
        handle = tar.extractfile(member)
        assert handle is not None
        return dict(json.loads(handle.read()))


if __name__ == "__main__":
    sys.exit(main())
