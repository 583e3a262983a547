"""The Lambda image (lambda/Dockerfile) under the AWS Lambda Runtime Interface Emulator, in Docker.

The same request as test_api_local.py's, but the handler runs inside kubesage/lambda-api with
awslambdaric, hosted by the emulator from the aws-sam-cli wheel (`make image` builds both); the local
API front invokes it through the emulator's Lambda invoke API, and the function calls `kubesage serve`
on the host's loopback (host networking). What this cannot show: Lambda's own cold starts, memory
limits and IAM; those are verified only on paper.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubesage.deploy.bundle import bundle_from_model
from kubesage.local_api.front import LAMBDA_IMAGE, RIE_PATH, GatewayServer, LambdaContainer
from kubesage.local_api.gateway import LambdaInvoker, generate_api_key
from tests.integration.api_helpers import evaluation_path_probability, registered_model_dir, seed_record
from tests.integration.cli_helpers import served
from tests.needs import missing_image, require

pytestmark = [pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope="module")
def model_dir(trained_model: Path, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_model_dir(trained_model, prepared, tmp_path_factory.mktemp("registered"), threshold=0.5)


@pytest.fixture(scope="module")
def endpoint(model_dir: Path) -> Iterator[str]:
    with served(model_dir, workers=1) as url:
        yield url


def test_the_seed_record_through_the_lambda_image(endpoint: str, model_dir: Path, churn_csv: Path) -> None:
    require(missing_image(LAMBDA_IMAGE))
    require(None if RIE_PATH.is_file() else f"{RIE_PATH} is missing: run `make image` (lambda/build-image.sh)")
    record, label = seed_record(churn_csv)
    key = generate_api_key()
    with LambdaContainer(bundle_from_model(str(model_dir)), endpoint, "churn") as function:
        with GatewayServer(LambdaInvoker(function.url), key) as api:
            response = httpx.post(
                f"{api.url}/predict", headers={"x-api-key": key}, content=json.dumps(record), timeout=60
            )
            bad = httpx.post(f"{api.url}/predict", headers={"x-api-key": key}, content="{}", timeout=60)
        logs = function.logs()
    assert response.status_code == 200, (response.text, logs[-2000:])
    (prediction,) = response.json()["predictions"]
    assert label == "True." and prediction["churn"] is True
    assert prediction["churn_probability"] == pytest.approx(evaluation_path_probability(model_dir, record), abs=1e-6)
    assert bad.status_code == 400 and len(bad.json()["errors"]) == 19  # every required field is missing
    assert "Traceback" not in bad.text
    assert "START RequestId" in logs  # it really ran under the emulator
