"""The whole request path on loopback: `kubesage api` -> handler -> boto3 -> `kubesage serve` -> daal4py.

Both commands run as real processes. What stands in for AWS: the local API front for API Gateway
(key check, proxy event, response mapping), `kubesage serve` for the SageMaker endpoint (boto3's
sagemaker-runtime client calls its /endpoints/<name>/invocations). Usage-plan throttling and quotas
are not enforced locally; they are checked only in the template (test_api_deploy_moto.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubesage.util.ports import free_port
from tests.integration.api_helpers import evaluation_path_probability, registered_model_dir, seed_record
from tests.integration.cli_helpers import KUBESAGE, served, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KEY = "test-key-0123456789abcdefghijklmnopqrstu"


@pytest.fixture(scope="module")
def model_dir(trained_model: Path, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_model_dir(trained_model, prepared, tmp_path_factory.mktemp("registered"), threshold=0.5)


@pytest.fixture(scope="module")
def endpoint(model_dir: Path) -> Iterator[str]:
    with served(model_dir, workers=1) as url:
        yield url


@pytest.fixture(scope="module")
def api(endpoint: str, model_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "KUBESAGE_API_KEY": KEY}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    command = [KUBESAGE, "api", "--endpoint-url", endpoint, "--model", str(model_dir), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode() if process.stdout else "")
        try:
            httpx.get(url + "/", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield url
    finally:
        stop_server(process)


def test_the_seed_record_through_the_local_api(api: str, model_dir: Path, churn_csv: Path) -> None:
    record, label = seed_record(churn_csv)
    assert label == "True."
    response = httpx.post(f"{api}/predict", headers={"x-api-key": KEY}, content=json.dumps(record), timeout=30)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["churn"] is True
    assert prediction["churn_probability"] == pytest.approx(evaluation_path_probability(model_dir, record), abs=1e-6)
    assert response.headers["x-request-id"]


def test_keys_routes_and_bad_input_as_api_gateway_answers(api: str, churn_csv: Path) -> None:
    record, _ = seed_record(churn_csv)
    body = json.dumps(record)
    assert httpx.post(f"{api}/predict", content=body).json() == {"message": "Forbidden"}
    wrong = httpx.post(f"{api}/predict", headers={"x-api-key": "nope"}, content=body)
    assert (wrong.status_code, wrong.json()) == (403, {"message": "Forbidden"})
    other = httpx.get(f"{api}/predict", headers={"x-api-key": KEY})
    assert (other.status_code, other.json()) == (403, {"message": "Missing Authentication Token"})
    bad = httpx.post(f"{api}/predict", headers={"x-api-key": KEY}, content=json.dumps({**record, "Day Mins": "x"}))
    assert bad.status_code == 400
    assert bad.json()["errors"] == [{"record": 0, "field": "Day Mins", "message": 'must be a number, got "x"'}]
    assert bad.json()["requestId"] == bad.headers["x-request-id"]
    huge = httpx.post(f"{api}/predict", headers={"x-api-key": KEY}, content=b"[" + b" " * 7_000_000 + b"]")
    assert huge.status_code == 413
    for response in (wrong, other, bad, huge):
        assert "Traceback" not in response.text
