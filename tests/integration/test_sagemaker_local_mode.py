"""Compiled pipelines executed for real by the SageMaker SDK's local mode (Docker + docker-compose).

Each job runs in the kubesage image exactly as the compiled definition says (shim entrypoint, task
spec from S3, inputs and outputs through S3); S3 is moto in server mode on 127.0.0.1. The churn
pipeline through `SageMakerLocalRunner.run`, tracked in a real MLflow server, is in the compliance
suite (tests/compliance/), beside the other runners. The toy pipelines here run untracked through
`run_local`; their results are read back from each step's outputs.json.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from kfp import compiler

from kubesage.errors import RunnerError
from kubesage.runners.registry import load_pipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.local_mode import SageMakerLocalRunner, check_tracking_uri, run_local
from tests.mlflow_server import MlflowServer
from tests.servers import moto_session

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "churn.txt"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sagemaker"
IMAGE = os.environ.get("KUBESAGE_SAGEMAKER_TEST_IMAGE", "kubesage/xgboost-daal4py:latest")
BUCKET = "kubesage-local-mode"


@pytest.fixture(scope="module")
def s3_endpoint(moto_endpoint: str) -> str:
    # Fail loudly, never skip: `make test` builds the image first.
    assert shutil.which("docker"), "Docker is required for SageMaker local mode tests"
    assert shutil.which("docker-compose") or shutil.which("docker"), "docker-compose is required"
    return moto_endpoint


@pytest.fixture(scope="module")
def tracking_url(mlflow_server: MlflowServer) -> str:
    """A real tracking server on the host's loopback only, as a user would start one."""
    return mlflow_server.url


@pytest.fixture
def session(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    return moto_session(s3_endpoint, BUCKET, monkeypatch)


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


def _kfp_local_output(module: str, tmp_path: Path, **arguments: Any) -> Any:
    """The pipeline's output on KFP's own local runner, in a separate process (kfp.local is global state)."""
    script = (
        "import importlib.util, json, sys\n"
        "from kfp import local\n"
        f"spec = importlib.util.spec_from_file_location('{module}', r'{GOLDEN / (module + '.py')}')\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        f"local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=r'{tmp_path / 'kfp-root'}',"
        f" workspace_root=r'{tmp_path / 'kfp-workspace'}')\n"
        f"print(json.dumps(getattr(mod, '{module}')(**json.loads(sys.argv[1])).output))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(arguments)], capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_unrolled_loop_and_inlined_sub_pipeline_match_kfp_local(
    session: boto3.Session, s3_endpoint: str, tmp_path: Path
) -> None:
    """A literal ParallelFor unrolled into three steps, dsl.Collected gathered into a list parameter,
    and a sub-pipeline inlined: run for real in local mode, with the values KFP's local runner gives."""
    spec = _toy_spec("toy_nested_loop", tmp_path)
    _, result = run_local(spec, _config(), {"offset": 5}, session, s3_endpoint)
    assert result.succeeded, result.failure
    out = {name: o["parameters"].get("Output") for name, o in result.outputs.items()}
    assert [out[f"for-loop-2-{i}-square"] for i in range(3)] == [1, 4, 9]
    assert out["total"] == 14 and out["inner-square"] == 196 and out["inner-add"] == 210
    assert out["add"] == 215
    assert _kfp_local_output("toy_nested_loop", tmp_path, offset=5) == out["add"]


def test_kubernetes_secrets_reach_the_task_in_the_image(
    session: boto3.Session, s3_endpoint: str, tmp_path: Path
) -> None:
    """kfp-kubernetes `use_secret_as_env` + `use_secret_as_volume` + a ConfigMap, in the kubesage image: the
    shim (root) reads the secret from moto's Secrets Manager with the job's keys, the task (the image's
    kubesage user) gets it as env and as its own 0600 file; the value is in no step's output."""
    import hashlib
    import uuid

    from tests.corpus.sagemaker.kubernetes import k8s_secrets_env_and_file

    token = f"local-mode-{uuid.uuid4().hex}"  # a test value, made fresh: moto's state outlives one test
    name = f"prod/api-token-{uuid.uuid4().hex[:8]}"
    session.client("secretsmanager", endpoint_url=s3_endpoint).create_secret(
        Name=name, SecretString=json.dumps({"token": token})
    )
    ir = tmp_path / "k8s.yaml"
    compiler.Compiler().compile(k8s_secrets_env_and_file, str(ir))
    source = load_pipeline(str(ir), tmp_path)
    config = _config().model_copy(
        update={
            "secret_map": {"api-token": name},
            "config_maps": {"settings": {"level": "INFO"}},
            "secrets_endpoint_url": s3_endpoint,
        }
    )
    compiled, result = run_local(source.spec, config, {}, session, s3_endpoint, source.platform_spec)
    assert result.succeeded, result.failure
    digest = hashlib.sha256(f"{token}|{token}|INFO".encode()).hexdigest()
    assert result.outputs["use-token"]["parameters"]["Output"] == f"{digest} 600 own"
    assert token not in compiled.definition_json() + json.dumps(result.outputs)


def test_local_mode_runner_refuses_a_store_containers_cannot_write(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite store is a file on the host: refused before the parent run opens or Docker starts."""
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    runner = SageMakerLocalRunner(_config(), s3_endpoint_url=s3_endpoint)
    with pytest.raises(RunnerError, match=r"cannot write to a database or file store") as raised:
        runner.run(pipeline, {"input_data": str(DATA)})
    assert f"sqlite:///{store}" in str(raised.value)
    assert "mlflow server --host 127.0.0.1" in str(raised.value)
    assert not store.exists() and runner.last_execution is None


@pytest.mark.parametrize(
    ("uri", "usable"),
    [
        ("http://127.0.0.1:5000", True),
        ("https://mlflow.example.com", True),
        ("databricks", True),
        ("arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/kubesage", True),
        ("sqlite:///tmp/mlflow.db", False),
        ("file:///tmp/mlruns", False),
        ("/tmp/mlruns", False),
        ("postgresql://mlflow@127.0.0.1/mlflow", False),
    ],
)
def test_tracking_uris_local_mode_containers_can_use(uri: str, usable: bool) -> None:
    if usable:
        check_tracking_uri(uri)
    else:
        with pytest.raises(RunnerError, match="MLFLOW_TRACKING_URI"):
            check_tracking_uri(uri)
