"""The conformance suite's runners and runs: each scenario once per runner per session.

A scenario is a conformance pipeline (tests/conformance/pipelines.py) with its parameters. Runners:
`local` (KFP's local runner), `kfp` (the v2beta1 API stand-in, tests/standins/, which executes runs with
kfp.local in a clean process) and `sagemaker-local` (the compiled SageMaker definition in the SDK's
local mode with the kubesage image in Docker, S3 being moto in server mode; marked `container`). All
track into the session's real `mlflow server` on loopback, which the step containers reach on the host
network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubesage.ir.source import PipelineSource, load_pipeline
from kubesage.runners.base import RunResult, StepEvent
from kubesage.runners.registry import get_runner
from kubesage.util.boto_sessions import new_boto3_session
from kubesage.util.environment import environment
from tests.mlflow_server import MlflowServer
from tests.recording import RecordingProgress
from tests.servers import running_moto

IMAGE = os.environ.get("KUBESAGE_SAGEMAKER_TEST_IMAGE", "kubesage/xgboost-daal4py:latest")
BUCKET = "kubesage-conformance"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

RUNNERS = [
    pytest.param("local", id="local"),
    pytest.param("kfp", id="kfp"),
    pytest.param("sagemaker-local", id="sagemaker-local", marks=pytest.mark.container),
]


@dataclass(frozen=True)
class Scenario:
    """A pipeline, its parameters, and what every runner must do with them."""

    pipeline: str  # a function in tests/conformance/pipelines.py
    parameters: dict[str, Any]
    steps: frozenset[str]  # the MLflow step runs (one per task that ran)
    metrics: dict[str, float]  # the parent run's metrics: the final values
    # The condition tasks whose condition was false, as the runner reports them (their names are the
    # IR's task names; inside loops and sub-pipelines SageMaker prefixes them, so only a count there).
    skipped: frozenset[str] | int = 0


def _readings(count: int) -> tuple[float, int]:
    """What `summarize` computes for `make_readings(count)`, by the same arithmetic."""
    values = [(i % 100) / 10 for i in range(count)]
    return round(sum(values) / len(values), 6), count


_MEAN, _N = _readings(300)
_SQUARES = {f"square-{x}": float(x * x) for x in (1, 2, 3)}
_TOTAL = 1 * 1 + 4 * 10 + 9 * 100  # squares of 1, 2, 3 weighted by {"0": 1, "1": 10, "2": 100}

SCENARIOS: dict[str, Scenario] = {
    # mean 4.95 > 2.5: the plain If, its nested If on n (300 >= 200), the If on alert's str output;
    # n 300 <= 1000, so the Elif (mean > 2.5) of the second group.
    "sensor-high": Scenario(
        "sensor_alerts",
        {"count": 300},
        frozenset({"make-readings", "summarize", "alert", "many-readings", "alert-said", "warm"}),
        {
            "summarize.mean": _MEAN,
            "summarize.n": _N,
            "alert.mean": _MEAN,
            "alert.n": _N,
            "many-readings.chars": float(len(f"mean {_MEAN:.3f} over {_N} readings")),
            "alert-said.chars": float(len(f"mean {_MEAN:.3f} over {_N} readings")),
            "warm.chars": float(len("above threshold")),
        },
        frozenset({"condition-5", "condition-7"}),  # the flood If and the Else
    ),
    # mean 4.95 <= 7 and n 300 <= 1000: neither If, nor the Elif: the Else branch.
    "sensor-calm": Scenario(
        "sensor_alerts",
        {"count": 300, "threshold": 7.0},
        frozenset({"make-readings", "summarize", "calm"}),
        {"summarize.mean": _MEAN, "summarize.n": _N, "calm.chars": float(len("below threshold"))},
        frozenset({"condition-1", "condition-5", "condition-6"}),  # high, flood, warm
    ),
    # n 300 > 200: the second group's If (its Elif and Else skipped); mean 4.95 <= 7: no alert.
    "sensor-flood": Scenario(
        "sensor_alerts",
        {"count": 300, "threshold": 7.0, "flood": 200},
        frozenset({"make-readings", "summarize", "flood"}),
        {"summarize.mean": _MEAN, "summarize.n": _N, "flood.mean": _MEAN, "flood.n": _N},
        frozenset({"condition-1", "condition-6", "condition-7"}),  # high, warm, the Else
    ),
    "loops": Scenario(
        "loops_and_subpipelines",
        {},
        frozenset(
            {
                *_SQUARES,
                "loop-scale-2",
                "loop-scale-3",
                "total",
                f"first-{_TOTAL}",
                f"big-{_TOTAL * 2}",
                "second-1",
                "flag",
                "flagged",
            }
        ),
        {
            **_SQUARES,
            "loop-scale-2": 4.0,
            "loop-scale-3": 6.0,
            "total.total": float(_TOTAL),
            f"first-{_TOTAL}": float(_TOTAL * 2),
            f"big-{_TOTAL * 2}": float(_TOTAL * 4),
            "second-1": 2.0,
            "flag.chars": 4.0,
            "flagged.chars": 3.0,
        },
        2,  # past-first for item 1, big in the second use of the sub-pipeline
    ),
}


@dataclass(frozen=True)
class CompletedRun:
    runner: str
    scenario: Scenario
    result: RunResult
    events: list[StepEvent]
    tracking_uri: str


@pytest.fixture(scope="session")
def conformance_mlflow(shared_mlflow: MlflowServer) -> MlflowServer:
    """The session's MLflow server (tests/conftest.py): the tests read their runs by parent run id
    only, so the other suites' runs there change nothing, and no second server starts."""
    return shared_mlflow


@pytest.fixture(scope="session")
def conformance_moto() -> Iterator[str]:
    yield from running_moto()


@pytest.fixture(scope="session")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PipelineSource]:
    """Each conformance pipeline compiled once."""
    workdir = tmp_path_factory.mktemp("conformance-ir")
    names = {scenario.pipeline for scenario in SCENARIOS.values()}
    return {name: load_pipeline(f"tests.conformance.pipelines:{name}", workdir) for name in sorted(names)}


def _runner_setup(name: str, request: pytest.FixtureRequest, tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The runner's options and the environment its runs need here."""
    if name == "local":
        return {"pipeline_root": str(tmp / "kfp-root")}, {}
    if name == "kfp":
        return dict(request.getfixturevalue("kfp_runner_options")), {}
    assert shutil.which("docker"), "Docker is required for the sagemaker-local runner (make image)"
    endpoint: str = request.getfixturevalue("conformance_moto")
    with environment(AWS):
        s3 = new_boto3_session(region_name="us-east-1").client("s3", endpoint_url=endpoint)
        if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
            s3.create_bucket(Bucket=BUCKET)
    options = {"image_uri": IMAGE, "bucket": BUCKET, "prefix": "conformance", "s3_endpoint_url": endpoint}
    return options, AWS


_RUNS: dict[tuple[str, str], CompletedRun] = {}


@pytest.fixture
def completed(
    request: pytest.FixtureRequest,
    runner_name: str,
    scenario_name: str,
    pipelines: dict[str, PipelineSource],
    conformance_mlflow: MlflowServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> CompletedRun:
    """The scenario's run on the runner: once per session, whichever tests read it."""
    key = (runner_name, scenario_name)
    if key not in _RUNS:
        scenario = SCENARIOS[scenario_name]
        options, env = _runner_setup(runner_name, request, tmp_path_factory.mktemp(f"{runner_name}-{scenario_name}"))
        recorder = RecordingProgress()
        with environment({**env, "MLFLOW_TRACKING_URI": conformance_mlflow.url}):
            result = get_runner(runner_name, options).run(
                pipelines[scenario.pipeline],
                scenario.parameters,
                recorder,
            )
        _RUNS[key] = CompletedRun(runner_name, scenario, result, recorder.events, conformance_mlflow.url)
    return _RUNS[key]


@pytest.fixture(params=RUNNERS)
def runner_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(SCENARIOS))
def scenario_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)
