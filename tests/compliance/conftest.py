"""Every runner that can run here, driven through the same pipeline, data and seed.

Each runner case says how to reach its backend on this machine: `local` runs KFP's local runner;
`kfp` submits to a stand-in for KFP's v2beta1 REST API that runs each pipeline with kfp.local in a
clean process (tests/standins/: the client protocol, not a cluster); `sagemaker-local` runs the
compiled SageMaker definition in the SageMaker SDK's local mode with the kubesage image in Docker,
S3 being moto in server mode (and SageMaker's control plane, where the run makes its model package).
Every case tracks into one real `mlflow server` on loopback (job containers share the host network),
so all runs sit side by side in one store, as a user comparing runners would have them. Each heavy
run happens once per session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kubesage.ir.source import PipelineSource
from kubesage.runners.base import Runner, RunResult
from kubesage.runners.registry import get_runner, load_pipeline
from kubesage.util.boto_sessions import new_boto3_session
from kubesage.util.environment import environment
from tests.mlflow_server import MlflowServer
from tests.servers import running_moto

IMAGE = os.environ.get("KUBESAGE_SAGEMAKER_TEST_IMAGE", "kubesage/xgboost-daal4py:latest")
BUCKET = "kubesage-compliance"
SEED = 42


@dataclass
class RunnerCase:
    """How to build one runner here, and the environment its runs need."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def runner(self) -> Runner:
        return get_runner(self.name, self.options)

    def run(self, pipeline: PipelineSource, parameters: dict[str, Any], tracking_uri: str) -> RunResult:
        with environment({**self.env, "MLFLOW_TRACKING_URI": tracking_uri}):
            return self.runner().run(pipeline, parameters)


@pytest.fixture(scope="session")
def compliance_mlflow(shared_mlflow: MlflowServer) -> MlflowServer:
    """The session's MLflow server (tests/conftest.py): the runners' runs sit side by side in it."""
    return shared_mlflow


@pytest.fixture(scope="session")
def compliance_moto() -> Iterator[str]:
    yield from running_moto()


def _local_case(_request: pytest.FixtureRequest, tmp: Path) -> RunnerCase:
    return RunnerCase("local", {"pipeline_root": str(tmp / "kfp-root")})


def _sagemaker_local_case(request: pytest.FixtureRequest, _tmp: Path) -> RunnerCase:
    assert shutil.which("docker"), "Docker is required for the sagemaker-local runner (make image)"
    endpoint: str = request.getfixturevalue("compliance_moto")
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with environment(aws):
        s3 = new_boto3_session(region_name="us-east-1").client("s3", endpoint_url=endpoint)
        if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
            s3.create_bucket(Bucket=BUCKET)
    # The same moto is the SageMaker endpoint the run registers its model package at after local mode.
    options = {"image_uri": IMAGE, "bucket": BUCKET, "prefix": "compliance"}
    options |= {"s3_endpoint_url": endpoint, "endpoint_url": endpoint}
    return RunnerCase("sagemaker-local", options, aws)


def _kfp_case(request: pytest.FixtureRequest, _tmp: Path) -> RunnerCase:
    # The KFP v2beta1 API stand-in (tests/standins/kfp_api.py): kfp.Client's protocol, each run executed
    # by kfp.local in a clean process; it stands in for the API, not for Argo, the driver/launcher or scheduling.
    return RunnerCase("kfp", request.getfixturevalue("kfp_runner_options"))


# Every runner that can run on this machine. A new backend adds its case here.
CASE_BUILDERS: dict[str, Callable[[pytest.FixtureRequest, Path], RunnerCase]] = {
    "local": _local_case,
    "kfp": _kfp_case,
    "sagemaker-local": _sagemaker_local_case,
}


# Cases that need more than Python: their markers select them like any suite (`make test-fast`
# deselects `container`), and tests/needs.py skips them, or fails them under `make test`, where the
# engine or the image is missing.
CASE_MARKS = {"sagemaker-local": [pytest.mark.container]}


@pytest.fixture(
    scope="session", params=[pytest.param(name, marks=CASE_MARKS.get(name, ()), id=name) for name in CASE_BUILDERS]
)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunnerCase:
    return CASE_BUILDERS[request.param](request, tmp_path_factory.mktemp(f"case-{request.param}"))


@pytest.fixture(scope="session")
def churn_pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineSource:
    return load_pipeline("customer_churn", tmp_path_factory.mktemp("ir"))


@dataclass(frozen=True)
class CompletedRun:
    case: RunnerCase
    result: RunResult
    tracking_uri: str


_RUNS: dict[tuple[str, str], CompletedRun] = {}


def _run_once(kind: str, case: RunnerCase, pipeline: PipelineSource, params: dict[str, Any], uri: str) -> CompletedRun:
    key = (kind, case.name)
    if key not in _RUNS:
        _RUNS[key] = CompletedRun(case, case.run(pipeline, params, uri), uri)
    return _RUNS[key]


def shared_churn_run(case: RunnerCase, pipeline: PipelineSource, churn_csv: Path, tracking_uri: str) -> CompletedRun:
    """The churn pipeline on the real data through `case`, made once per runner and worker process.
    Another suite comparing with a runner's run reuses it (tests/container/test_kfp_docker.py, the local
    one) by calling this in the same xdist group (`compliance-<runner>`)."""
    return _run_once("churn", case, pipeline, {"input_data": str(churn_csv), "seed": SEED}, tracking_uri)


@pytest.fixture
def churn_run(
    case: RunnerCase, churn_pipeline: PipelineSource, churn_csv: Path, compliance_mlflow: MlflowServer
) -> CompletedRun:
    """The churn pipeline on the real data, once per runner."""
    return shared_churn_run(case, churn_pipeline, churn_csv, compliance_mlflow.url)


@pytest.fixture(scope="session")
def csv_without_day_mins(churn_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bad-data") / "churn-no-day-mins.csv"
    pd.read_csv(churn_csv).drop(columns=["Day Mins"]).to_csv(target, index=False)
    return target


@pytest.fixture
def failing_run(
    case: RunnerCase, churn_pipeline: PipelineSource, csv_without_day_mins: Path, compliance_mlflow: MlflowServer
) -> CompletedRun:
    """The churn pipeline on data missing a column: preprocess fails, once per runner."""
    params = {"input_data": str(csv_without_day_mins), "seed": SEED}
    return _run_once("failing", case, churn_pipeline, params, compliance_mlflow.url)
