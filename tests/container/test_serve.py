"""`docker run -p ... IMAGE serve` on the model trained in the container, driven by boto3."""

from __future__ import annotations

import csv
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kubesage.churn.features import FeatureSchema, transform_records
from kubesage.churn.modelio import booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from tests.container.conftest import TrainingRun, docker

pytestmark = pytest.mark.container

READY_TIMEOUT_SECONDS = 120
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Server:
    name: str
    url: str


def start_server(image: str, model_dir: Path, name: str) -> Server:
    docker(
        "run", "-d", "--name", name,
        "-p", "127.0.0.1::8080",  # the engine picks a free loopback port
        "-v", f"{model_dir}:/opt/ml/model:ro",
        "-e", "MODEL_SERVER_WORKERS=2",
        image, "serve",
    )  # fmt: skip
    port = docker("port", name, "8080/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
    server = Server(name=name, url=f"http://127.0.0.1:{port}")
    wait_until_ready(server)
    return server


def wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        state = docker("inspect", "-f", "{{.State.Running}}", server.name).stdout.strip()
        if state != "true":
            logs = docker("logs", server.name, check=False)
            pytest.fail(f"serve container exited before /ping answered:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.5)
    pytest.fail(f"/ping did not answer 200 within {READY_TIMEOUT_SECONDS}s")


def remove(name: str) -> None:
    docker("rm", "-f", name, check=False, timeout=60)


@pytest.fixture(scope="module")
def server(image: str, trained: TrainingRun) -> Iterator[Server]:
    assert trained.returncode == 0, trained.logs
    name = f"kubesage-serve-{int(time.time() * 1000) % 10**8}"
    try:
        yield start_server(image, trained.model_dir, name)
    finally:
        remove(name)


@pytest.fixture(scope="module")
def runtime(server: Server) -> Any:
    """boto3's sagemaker-runtime client, pointed at the container instead of AWS."""
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="test-key",  # SigV4 needs some credentials; the container ignores them
        aws_secret_access_key="test-secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def csv_body(features: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in features).encode()


def test_ping(server: Server) -> None:
    with urllib.request.urlopen(f"{server.url}/ping", timeout=5) as response:
        assert response.status == 200


def test_csv_batch_matches_the_booster(runtime: Any, trained: TrainingRun, prepared: dict[str, Path]) -> None:
    test = read_labelled_csv(prepared["test"])
    expected = booster_probabilities(load_booster(trained.model_dir), test.features)

    response = runtime.invoke_endpoint(
        EndpointName="churn", ContentType="text/csv", Accept="application/json", Body=csv_body(test.features)
    )

    assert response["ContentType"].startswith("application/json")
    predictions = json.loads(response["Body"].read())["predictions"]
    got = np.array([p["score"] for p in predictions])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_single_row_csv_out(runtime: Any, trained: TrainingRun, prepared: dict[str, Path]) -> None:
    row = read_labelled_csv(prepared["test"]).features[:1]
    expected = booster_probabilities(load_booster(trained.model_dir), row)

    response = runtime.invoke_endpoint(
        EndpointName="churn", ContentType="text/csv", Accept="text/csv", Body=csv_body(row)
    )

    lines = response["Body"].read().decode().split()
    assert len(lines) == 1
    assert float(lines[0]) == pytest.approx(float(expected[0]), abs=TOLERANCE)


def test_raw_records_use_the_schema(runtime: Any, trained: TrainingRun, churn_csv: Path) -> None:
    with churn_csv.open(newline="") as handle:
        records = [row for _, row in zip(range(40), csv.DictReader(handle), strict=False)]
    schema = FeatureSchema.load(trained.model_dir)
    expected = booster_probabilities(load_booster(trained.model_dir), transform_records(records, schema))

    response = runtime.invoke_endpoint(
        EndpointName="churn", ContentType="application/json", Body=json.dumps({"records": records}).encode()
    )

    got = np.array([p["score"] for p in json.loads(response["Body"].read())["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        pytest.param("text/csv", b"1.0,2.0\n", 400, "feature", id="wrong-feature-count"),
        pytest.param("application/json", b'{"instances": [[1, ', 400, "JSON", id="malformed-json"),
        pytest.param("text/plain", b"hello", 415, "text/plain", id="unsupported-type"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(
    runtime: Any, content_type: str, body: bytes, status: int, message: str
) -> None:
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="churn", ContentType=content_type, Body=body)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert message.lower() in json.dumps(error).lower()


def test_server_processes_run_unprivileged(server: Server) -> None:
    script = "for s in /proc/[0-9]*/status; do awk '/^Name:/{n=$2} /^Uid:/{print n, $2}' $s; done"
    out = docker("exec", server.name, "sh", "-c", script).stdout.split("\n")
    pythons = [line.split() for line in out if line.startswith("python")]
    # The supervisor and its two workers.
    assert len(pythons) >= 3
    assert {uid for _, uid in pythons} == {"10001"}


def test_sigterm_stops_well_within_30_seconds(image: str, trained: TrainingRun) -> None:
    name = f"kubesage-stop-{int(time.time() * 1000) % 10**8}"
    try:
        server = start_server(image, trained.model_dir, name)
        with urllib.request.urlopen(f"{server.url}/ping", timeout=5) as response:
            assert response.status == 200
        started = time.monotonic()
        docker("stop", "-t", "30", name, timeout=60)
        elapsed = time.monotonic() - started
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        logs = docker("logs", name, check=False)
    finally:
        remove(name)
    assert exit_code == "0", logs.stdout + logs.stderr
    assert elapsed < 10, f"docker stop took {elapsed:.1f}s"
