"""Compiled pipelines executed for real by the SageMaker SDK's local mode (Docker + docker-compose).

Each job runs in the kubesage image exactly as the compiled definition says (shim entrypoint, task
spec from S3, inputs and outputs through S3); S3 is moto in server mode on 127.0.0.1. The steps run
without MLflow (their tracking parameters stay empty: a tracking server on the host's loopback is
unreachable from local-mode containers), so results are read back from each step's outputs.json.
"""

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kfp import compiler
from moto.server import ThreadedMotoServer

from kubesage.pipeline_source import load_pipeline
from kubesage.runners.local import LocalRunner
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.local_mode import run_local

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "churn.txt"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sagemaker"
IMAGE = os.environ.get("KUBESAGE_SAGEMAKER_TEST_IMAGE", "kubesage/xgboost-daal4py:latest")
BUCKET = "kubesage-local-mode"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    # Fail loudly, never skip: `make test` builds the image first.
    assert shutil.which("docker"), "Docker is required for SageMaker local mode tests"
    assert shutil.which("docker-compose") or shutil.which("docker"), "docker-compose is required"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def session(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    boto = boto3.Session(region_name="us-east-1")
    s3 = boto.client("s3", endpoint_url=s3_endpoint)
    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    return boto


def _config() -> SageMakerConfig:
    return SageMakerConfig(image_uri=IMAGE, bucket=BUCKET, prefix="local")


def _toy_spec(module: str, tmp_path: Path) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location(module, GOLDEN / f"{module}.py")
    assert spec and spec.loader
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    target = tmp_path / f"{module}.yaml"
    compiler.Compiler().compile(getattr(loaded, module), str(target))
    return load_pipeline(str(target), tmp_path).spec


def _statuses(result: Any) -> dict[str, str]:
    return {s.name: s.status for s in result.steps}


def test_churn_in_local_mode_matches_the_kfp_local_run(
    session: boto3.Session, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """preprocess -> train (TrainingStep) -> evaluate -> gate -> register completes on the real data,
    with the same metrics as KFP's local runner on the same data and seed."""
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    _, result = run_local(pipeline.spec, _config(), {"input_data": str(DATA), "seed": 42}, session, s3_endpoint)
    assert result.succeeded, result.failure
    statuses = _statuses(result)
    assert {statuses[t] for t in ("preprocess", "train", "evaluate", "register")} == {"Succeeded"}
    assert "report-not-registered" not in statuses  # the else branch did not run
    sagemaker_metrics = result.outputs["evaluate"]["artifacts"]["metrics"]
    assert result.outputs["evaluate"]["parameters"]["Output"] == sagemaker_metrics["accuracy"]
    assert result.outputs["register"]["parameters"]["Output"] == "1"  # first MLflow model version

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    kfp = LocalRunner(pipeline_root=tmp_path / "kfp-root").run(pipeline, {"input_data": str(DATA), "seed": 42})
    assert kfp.succeeded, kfp.failure
    assert set(kfp.metrics) >= set(sagemaker_metrics)
    for name, value in sagemaker_metrics.items():
        assert kfp.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_toy_words_runs_nested_conditions_and_else(session: boto3.Session, s3_endpoint: str, tmp_path: Path) -> None:
    text = "The cat and the hat and THE bat sat"
    _, result = run_local(
        _toy_spec("toy_words", tmp_path), _config(), {"text": text, "threshold": 3}, session, s3_endpoint
    )
    assert result.succeeded, result.failure
    words = [w.lower() for w in text.split() if len(w) >= 3]
    assert result.outputs["count-words"]["parameters"]["Output"] == len(words)
    assert result.outputs["top-word"]["parameters"]["Output"] == "the"
    statuses = _statuses(result)
    assert statuses["summarize"] == "Succeeded"
    assert "too-short" not in statuses
    key = f"local/kubesage-toy-words/runs/{result.execution_id}/summarize/summary/summary"
    body = session.client("s3", endpoint_url=s3_endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body.decode() == f"the={words.count('the')} of {len(words)}\n"

    _, short = run_local(
        _toy_spec("toy_words", tmp_path), _config(), {"text": text, "threshold": 50}, session, s3_endpoint
    )
    assert short.succeeded, short.failure
    assert _statuses(short).get("too-short") == "Succeeded" and "summarize" not in _statuses(short)
    assert short.outputs["too-short"]["parameters"]["Output"] == f"only {len(words)} words"


def test_toy_threshold_trains_and_gates(session: boto3.Session, s3_endpoint: str, tmp_path: Path) -> None:
    spec = _toy_spec("toy_threshold", tmp_path)
    _, result = run_local(spec, _config(), {"n_rows": 120, "label": "it"}, session, s3_endpoint)
    assert result.succeeded, result.failure
    r2 = result.outputs["score-line"]["parameters"]["Output"]
    assert 0.9 < r2 <= 1.0
    assert result.outputs["score-line"]["artifacts"]["metrics"]["r2"] == r2
    assert result.outputs["publish"]["parameters"]["note"] == f"published it r2={r2:.4f}"

    _, gated = run_local(spec, _config(), {"n_rows": 120, "min_r2": 1.5}, session, s3_endpoint)
    assert gated.succeeded and "publish" not in _statuses(gated)
    assert json.dumps(gated.outputs["score-line"]["parameters"]) != "{}"


def test_local_mode_runner_fills_the_shared_summary(
    session: boto3.Session, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runner.run glue: parent MLflow run opened and closed, the steps' metrics copied onto it
    (containers cannot reach a sqlite/loopback tracking store), step lines reported."""
    from kubesage.runners.sagemaker.local_mode import SageMakerLocalRunner

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    lines: list[str] = []
    runner = SageMakerLocalRunner(_config(), s3_endpoint_url=s3_endpoint)
    result = runner.run(pipeline, {"input_data": str(DATA)}, lines.append)
    assert result.succeeded, result.failure
    assert result.runner == "sagemaker-local"
    assert 0.5 < result.metrics["accuracy"] <= 1.0
    assert result.metrics["rows_train"] == 3500.0
    assert any(line == "step train: Succeeded" for line in lines)
    assert any("not reachable from local-mode containers" in line for line in lines)
