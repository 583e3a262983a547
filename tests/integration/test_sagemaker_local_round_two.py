"""A runtime dsl.ParallelFor and a dsl.OneOf pipeline, run for real by the SageMaker SDK's local mode.

Same harness as test_sagemaker_local_mode.py (Docker, moto S3 on 127.0.0.1, the kubesage image):
the runtime loop runs as one fan-out step whose job runs the body once per item, the OneOf reader as
one copy per branch; the final values must equal what KFP's own local runner gives.
"""

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

from kubesage.runners.registry import load_pipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.local_mode import run_local
from tests.integration import sagemaker_round_two_pipelines as pipelines
from tests.servers import moto_session

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow]

IMAGE = os.environ.get("KUBESAGE_SAGEMAKER_TEST_IMAGE", "kubesage/xgboost-daal4py:latest")
BUCKET = "kubesage-local-round-two"


@pytest.fixture(scope="module")
def s3_endpoint(moto_endpoint: str) -> str:
    assert shutil.which("docker"), "Docker is required for SageMaker local mode tests"
    return moto_endpoint


@pytest.fixture
def session(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    return moto_session(s3_endpoint, BUCKET, monkeypatch)


def _spec(name: str, tmp_path: Path) -> dict[str, Any]:
    target = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(getattr(pipelines, name), str(target))
    return load_pipeline(str(target), tmp_path).spec


def _kfp_local_output(name: str, tmp_path: Path, **arguments: Any) -> Any:
    """The pipeline's output on KFP's own local runner, in a separate process (kfp.local is global state)."""
    script = (
        "import json, sys\n"
        "from kfp import local\n"
        "from tests.integration import sagemaker_round_two_pipelines as m\n"
        f"local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=r'{tmp_path / 'kfp-root'}',"
        f" workspace_root=r'{tmp_path / 'kfp-workspace'}')\n"
        f"print(json.dumps(m.{name}(**json.loads(sys.argv[1])).output))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(arguments)],
        capture_output=True, text=True, timeout=600, check=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _config() -> SageMakerConfig:
    return SageMakerConfig(image_uri=IMAGE, bucket=BUCKET, prefix="local")


def test_a_runtime_loop_fans_out_in_one_job_with_kfp_locals_values(
    session: boto3.Session, s3_endpoint: str, tmp_path: Path
) -> None:
    _, result = run_local(_spec("runtime_fan_out", tmp_path), _config(), {"n": 4}, session, s3_endpoint)
    assert result.succeeded, result.failure
    out = {name: o["parameters"] for name, o in result.outputs.items()}
    assert json.loads(out["for-loop-1"]["square__Output"]) == [1, 4, 9, 16]
    assert out["add-up"]["Output"] == 30 and out["count-rows"]["Output"] == 30
    assert out["combine"]["Output"] == "total=30 rows=30"
    assert result.outputs["for-loop-1"]["items"] == 4
    assert _kfp_local_output("runtime_fan_out", tmp_path, n=4) == out["combine"]["Output"]


@pytest.mark.parametrize(("score", "branch"), [(65, "condition-3"), (20, "condition-4")])
def test_one_of_runs_exactly_the_copy_in_the_branch_that_ran(
    session: boto3.Session, s3_endpoint: str, tmp_path: Path, score: int, branch: str
) -> None:
    _, result = run_local(_spec("one_of", tmp_path), _config(), {"score": score}, session, s3_endpoint)
    assert result.succeeded, result.failure
    copies = sorted(name for name in result.outputs if name.startswith("shout-"))
    assert copies == [f"shout-{branch}"]
    value = result.outputs[f"shout-{branch}"]["parameters"]["Output"]
    assert value == _kfp_local_output("one_of", tmp_path, score=score)


def test_an_exit_handler_runs_its_exit_task_after_a_failure_and_the_run_still_fails(
    session: boto3.Session, s3_endpoint: str, tmp_path: Path
) -> None:
    spec = _spec("exit_handler", tmp_path)
    _, failed = run_local(spec, _config(), {"fail": True}, session, s3_endpoint)
    assert not failed.succeeded
    statuses = {s.name: s.status for s in failed.steps}
    assert statuses["cleanup"] == "Succeeded"  # the exit task ran although maybe-fail failed
    assert failed.outputs["cleanup"]["parameters"]["Output"] == (
        "cleaned after FAILED: tasks inside dsl.ExitHandler 'exit-handler-1' did not all succeed: "
        "maybe-fail: failed, plus-one: skipped (exit-handler-1)"
    )
    assert (failed.outputs["maybe-fail"]["status"], failed.outputs["plus-one"]["status"]) == ("failed", "skipped")
    assert statuses["exit-handler-1-failed"] == "Failed"
    assert "maybe-fail: failed" in (failed.failure or "") and "plus-one: skipped" in (failed.failure or "")

    _, passed = run_local(spec, _config(), {"fail": False}, session, s3_endpoint)
    assert passed.succeeded, passed.failure
    assert passed.outputs["plus-one"]["parameters"]["Output"] == 8
    assert passed.outputs["cleanup"]["parameters"]["Output"] == "cleaned after SUCCEEDED: no error (exit-handler-1)"
    assert "exit-handler-1-failed" not in {s.name for s in passed.steps}
