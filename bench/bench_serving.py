"""Serving benchmark: kubesage's server vs `mlflow models serve`, same churn model, one run.

    .venv/bin/python bench/bench_serving.py [--duration 8] [--workers N]

Trains a churn model on ../shared/data/churn.txt, serves it (a) with kubesage.serving and (b)
with `mlflow models serve --env-manager local`, each with the same number of workers (the
CPUs by default; MLflow's own default is 1), after logging the same booster with
mlflow.xgboost to a temporary SQLite-backed MLflow, then drives both with `wrk` (apt-get install
wrk; a Lua script posts a fixed body) on loopback:
single-record requests with 1 and 8 concurrent connections, and 1,000-row batches with 1.
Both servers get the very same bytes, MLflow's own JSON body {"inputs": [[...]]} (ours accepts
it too); ours is also driven with the same rows as text/csv, SageMaker XGBoost's format. A
third server, bench/floor_app.py on the same uvicorn stack, reads the body and answers "ok": the
ceiling that the HTTP layer, wrk and this machine leave for any server built like ours.
Prints requests/s, p50 and p99 latency side by side, and the ratios (same JSON body). Takes
about 4 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import xgboost as xgb

from kubesage.churn.features import LABEL_COLUMN, POSITIVE_LABEL, fit_schema, transform_columns
from kubesage.churn.modelio import booster_probabilities, save_booster
from kubesage.serving.negotiation import CSV, JSON
from kubesage.serving.server import available_cpus
from kubesage.util.ports import free_port

CHURN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "churn.txt"
BATCH_ROWS = 1000
WRK_LUA = """
local f = io.open(os.getenv("BENCH_BODY"), "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
wrk.headers["Accept"] = "application/json"
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    rows: int
    connections: int


SCENARIOS = (
    Scenario("1 record, 1 client", 1, 1),
    Scenario("1 record, 8 clients", 1, 8),
    Scenario("1,000 rows, 1 client", BATCH_ROWS, 1),
)


@dataclass(frozen=True)
class Result:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def train_model(directory: Path) -> tuple[xgb.Booster, np.ndarray]:
    churn = pd.read_csv(CHURN)
    schema = fit_schema(churn)
    features = transform_columns(churn, schema)
    labels = (churn[LABEL_COLUMN] == POSITIVE_LABEL).to_numpy(dtype=np.float64)
    params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.3, "gamma": 4.0, "min_child_weight": 6.0}
    params |= {"subsample": 0.7, "seed": 42}
    train = xgb.DMatrix(features[:4000], label=labels[:4000])
    valid = xgb.DMatrix(features[4000:], label=labels[4000:])
    booster = xgb.train(params, train, 100, evals=[(valid, "v")], early_stopping_rounds=10, verbose_eval=False)
    # MLflow's pyfunc predicts with every tree, ignoring best_iteration; keep only the best rounds
    # so both servers serve the very same trees.
    booster = booster[: booster.best_iteration + 1]
    save_booster(booster, directory)
    schema.save(directory)
    return booster, features


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"server for {url} exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Own process group, so stop() reaches the server's worker processes too.
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def log_mlflow_model(booster: xgb.Booster, work: Path) -> tuple[str, dict[str, str]]:
    import mlflow

    # mlflow models serve execs `uvicorn` by name: the venv's bin must be on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    experiment = mlflow.create_experiment("bench-serving", artifact_location=(work / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.xgboost.log_model(booster, name="model", model_format="ubj")
    return info.model_uri, env


def csv_body(matrix: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in matrix).encode()


def json_body(matrix: np.ndarray) -> bytes:
    return json.dumps({"inputs": matrix.tolist()}).encode()


def run_wrk(url: str, body_file: Path, content_type: str, connections: int, duration: int, work: Path) -> Result:
    script = work / "post.lua"
    script.write_text(WRK_LUA)
    env = {**os.environ, "BENCH_BODY": str(body_file), "BENCH_CONTENT_TYPE": content_type}
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    return Result(rate, _percentile(output, "50"), _percentile(output, "99"), errors)


def _percentile(output: str, which: str) -> float:
    match = re.search(rf"^\s+{which}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"wrk printed no {which}th percentile:\n{output}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def check_answers(ours: str, mlflow_url: str, features: np.ndarray, booster: xgb.Booster) -> float:
    """Both servers must return the booster's probabilities before their speed means anything."""
    rows = features[:50]
    expected = booster_probabilities(booster, rows)
    a = httpx.post(ours, content=csv_body(rows), headers={"content-type": CSV}, timeout=30).json()
    b = httpx.post(mlflow_url, content=json_body(rows), headers={"content-type": JSON}, timeout=30).json()
    ours_scores = np.array([p["score"] for p in a["predictions"]])
    c = httpx.post(ours, content=json_body(rows), headers={"content-type": JSON}, timeout=30).json()
    if [p["score"] for p in c["predictions"]] != ours_scores.tolist():
        raise SystemExit("kubesage answers the same rows differently as JSON and as CSV; benchmark aborted")
    mlflow_scores = np.asarray(b["predictions"], dtype=np.float64).reshape(-1)
    if np.max(np.abs(mlflow_scores - expected)) > 1e-6:
        raise SystemExit("mlflow models serve does not return the booster's probabilities; benchmark aborted")
    return float(np.max(np.abs(ours_scores - expected)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (12 runs)")
    parser.add_argument("--workers", type=int, default=None, help="workers of each server (default: CPUs)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        model_dir = work / "model"
        booster, features = train_model(model_dir)
        model_uri, mlflow_env = log_mlflow_model(booster, work)

        our_port, mlflow_port = free_port(), free_port()
        ours = [
            sys.executable,
            "-m",
            "kubesage.cli",
            "serve",
            "--model-dir",
            str(model_dir),
            "--host",
            "127.0.0.1",
        ]
        workers = args.workers or available_cpus()  # the same count for all three servers
        ours += ["--port", str(our_port), "--workers", str(workers)]
        processes.append(start(ours, dict(os.environ), work / "kubesage.log"))
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        mlflow_cmd = [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager", "local"]
        mlflow_cmd += ["-p", str(mlflow_port), "-h", "127.0.0.1", "--workers", str(workers)]
        processes.append(start(mlflow_cmd, mlflow_env, work / "mlflow.log"))
        floor_port = free_port()
        floor_cmd = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(Path(__file__).parent)]
        floor_cmd += ["--host", "127.0.0.1", "--port", str(floor_port), "--http", "httptools", "--loop", "uvloop"]
        floor_cmd += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        processes.append(start(floor_cmd, dict(os.environ), work / "floor.log"))
        wait_for(f"http://127.0.0.1:{our_port}/ping", processes[0], work / "kubesage.log")
        wait_for(f"http://127.0.0.1:{mlflow_port}/ping", processes[1], work / "mlflow.log")
        wait_for(f"http://127.0.0.1:{floor_port}/ping", processes[2], work / "floor.log")
        floor_url = f"http://127.0.0.1:{floor_port}/invocations"
        our_url = f"http://127.0.0.1:{our_port}/invocations"
        mlflow_url = f"http://127.0.0.1:{mlflow_port}/invocations"
        parity = check_answers(our_url, mlflow_url, features, booster)

        # Row label -> (server, body file, content type); "kubesage" and "mlflow" give the ratio.
        targets = {
            "kubesage": (our_url, "body.json", JSON),
            "mlflow": (mlflow_url, "body.json", JSON),
            "kubesage csv": (our_url, "body.csv", CSV),
            "floor": (floor_url, "body.json", JSON),
        }
        table: list[tuple[Scenario, dict[str, Result]]] = []
        for scenario in SCENARIOS:
            rows = features[1000 : 1000 + scenario.rows]
            (work / "body.csv").write_bytes(csv_body(rows))
            (work / "body.json").write_bytes(json_body(rows))
            cells = {
                label: run_wrk(url, work / body, content_type, scenario.connections, args.duration, work)
                for label, (url, body, content_type) in targets.items()
            }
            table.append((scenario, cells))
        print_table(table, parity, args.duration, workers)
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(work, ignore_errors=True)


def print_table(table: list[tuple[Scenario, dict[str, Result]]], parity: float, duration: int, workers: int) -> None:
    print(
        f"\nkubesage.serving vs mlflow models serve (same churn booster; wrk, {duration} s per cell, loopback, "
        f"{os.cpu_count()} CPUs shared by servers and client, {workers} workers per server)"
    )
    print(f"kubesage max |p - booster| on 50 rows: {parity:.2e}")
    print('kubesage and mlflow rows: the same JSON body {"inputs": [[...]]}; kubesage csv: the same rows as text/csv')
    print("floor: an app that reads the body and answers ok on the same uvicorn stack (bench/floor_app.py)\n")
    header = f"{'scenario':<22} {'':>12} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}"
    print(header)
    print("-" * len(header))
    for scenario, cells in table:
        for label, r in cells.items():
            row = f"{r.requests_per_s:>10.1f} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} {r.errors:>7}"
            print(f"{scenario.name:<22} {label:>12} {row}")
        ours, theirs = cells["kubesage"], cells["mlflow"]
        speedup = ours.requests_per_s / theirs.requests_per_s if theirs.requests_per_s else float("inf")
        p99 = theirs.p99_ms / ours.p99_ms if ours.p99_ms else float("inf")
        print(f"{scenario.name:<22} {'ratio':>12} {speedup:>9.1f}x {'':>9} {p99:>8.1f}x")
    print("\nratio: kubesage/mlflow throughput, mlflow/kubesage p99, same body (higher is better for kubesage)")


if __name__ == "__main__":
    main()
