"""The seed's whole serving path on one machine, for `make demo`: serve a registered model, start the
local API in front of the handler, send one raw record with the key, print the answer, stop everything.

    python -m kubesage.local_api.demo [--model models:/customer-churn/N] [--data build/demo/churn.csv]

Without --model it takes the newest version of customer-churn in the MLflow store in force
(MLFLOW_TRACKING_URI, else the embedded SQLite store). The record is the first row of --data.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

from kubesage.churn.features import LABEL_COLUMN
from kubesage.deploy.bundle import bundle_from_model
from kubesage.errors import DeployError, KubesageError
from kubesage.local_api.front import GatewayServer, in_process_api
from kubesage.local_api.gateway import InProcessInvoker, generate_api_key
from kubesage.util.ports import free_port

MODEL_NAME = "customer-churn"
START_TIMEOUT = 120.0


def latest_model(name: str = MODEL_NAME) -> str:
    import mlflow

    from kubesage.tracking import mlflow_client, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    versions = mlflow_client().search_model_versions(f"name = '{name}'")
    if not versions:
        raise DeployError(f"no registered versions of {name}; run `make demo` (or kubesage run) first")
    return f"models:/{name}/{max(int(v.version) for v in versions)}"


def first_record(data: Path) -> tuple[dict[str, str], str | None]:
    with data.open(newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    return {k: v for k, v in row.items() if k != LABEL_COLUMN}, row.get(LABEL_COLUMN)


def wait_for_ping(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeployError(f"kubesage serve exited with {process.returncode}")
        try:
            with urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.2)
    raise DeployError(f"kubesage serve did not answer /ping within {START_TIMEOUT:.0f} s")


def run(model: str, data: Path, capture_dir: Path | None = None) -> dict[str, object]:
    record, label = first_record(data)
    bundle = bundle_from_model(model)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "kubesage.cli",
        "serve",
        "--model",
        model,
        "--port",
        str(port),
        "--workers",
        "1",
        *(["--capture", str(capture_dir), "--endpoint-name", "kubesage-demo"] if capture_dir else []),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ping(endpoint, server)
        key = generate_api_key()
        with GatewayServer(InProcessInvoker(in_process_api(bundle, endpoint, "kubesage-demo")), key) as api:
            request = Request(
                f"{api.url}/predict", data=json.dumps(record).encode(), headers={"x-api-key": key}, method="POST"
            )
            with urlopen(request, timeout=60) as response:
                answer: dict[str, object] = json.loads(response.read())
    finally:
        server.terminate()  # SIGTERM: the server writes its pending captures before it exits
        server.wait(timeout=30)
    return {"model": model, "threshold": bundle.decision_threshold, "label": label, "record": record, **answer}


def check_drift(model: str, capture_dir: Path, output_dir: Path) -> str:
    """`kubesage drift` on what the demo's server captured: the one line the demo prints about it."""
    from kubesage.monitoring.drift import DriftRequest, run_drift
    from kubesage.monitoring.publish import ModelVersion, log_to_mlflow
    from kubesage.serving.model_source import resolve_model_dir

    result = run_drift(DriftRequest(str(capture_dir), resolve_model_dir(model), output_dir))
    log_to_mlflow(result, ModelVersion.from_uri(model), str(capture_dir))
    return (
        f"drift ({result.events} captured request vs the training baseline): {len(result.violations)} violation(s); "
        f"report: {result.report}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", type=Path, default=Path("build/demo/churn.csv"))
    parser.add_argument("--capture-dir", type=Path, default=Path("build/demo/captures"))
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the demo's output stays short
    try:
        model = args.model or latest_model()
        shutil.rmtree(args.capture_dir, ignore_errors=True)  # this run's request only
        result = run(model, args.data, args.capture_dir)
        drift_line = check_drift(model, args.capture_dir, args.capture_dir.parent / "drift")
    except (KubesageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"POST /predict (API key; {result['model']}, threshold {result['threshold']}): first record of {args.data}")
    # One line: the demo's whole output fits in 40 lines (tests/integration/test_demo_output.py).
    print(json.dumps({"predictions": result["predictions"], "label in the data": result["label"]}))
    print(drift_line)
    print("run the same path yourself, in two terminals:")
    print(f"  kubesage serve --model {result['model']} --port 8080 --capture captures/")
    print(f"  kubesage api --endpoint-url http://127.0.0.1:8080 --model {result['model']}   # prints its API key")
    return 0


if __name__ == "__main__":
    sys.exit(main())
