"""Tasks inside a dsl.ExitHandler, run for real through the shim (no Docker): a failure is recorded.

The failing task ends its job successfully with `"status": "failed"` and stand-in outputs, the task
reading it is skipped without running, and a task outside any handler still fails its step.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler, dsl
from kfp.dsl import Dataset, Output

from kubesage.runners.sagemaker.config import SageMakerConfig
from tests.unit.runners.sagemaker.ir_file import compile_file, run_task, step_outputs, task_specs


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def boom(n: int, data: Output[Dataset]) -> int:
    if n > 0:
        raise RuntimeError("boom")
    with open(data.path, "w") as fh:  # noqa: PTH123
        fh.write("ok")
    return n


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def after(x: int) -> int:
    return x + 1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def cleanup() -> str:
    return "cleaned"


@dsl.pipeline(name="guarded")
def guarded(n: int = 1) -> None:
    with dsl.ExitHandler(cleanup()):
        first = boom(n=n)
        after(x=first.outputs["Output"])


def _specs(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return task_specs(guarded, tmp_path)


def _run(task: dict[str, Any], tmp_path: Path, *extra: str) -> int:
    return run_task(task, tmp_path / "spec", tmp_path / "w" / task["task"], *extra)


@pytest.fixture(autouse=True)
def venv_python_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")


def test_a_failing_task_in_a_handler_records_its_failure_with_stand_in_outputs(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    assert _run(specs["boom"], tmp_path, "--param", "n", "1", "--continue-on-failure") == 0
    assert step_outputs(tmp_path) == {
        "task": "boom",
        "parameters": {"Output": 0},
        "artifacts": {},
        "status": "failed",
        "failure": "exited with 1",
    }
    # an empty file, so the S3 prefix a later step reads is not empty (SageMaker refuses empty inputs)
    assert (tmp_path / "opt-ml" / "processing" / "output" / "data" / "data").read_text() == ""


def test_a_task_reading_a_failed_one_is_skipped_without_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = _specs(tmp_path)
    code = _run(specs["after"], tmp_path, "--param", "x", "0", "--continue-on-failure", "--upstream-status", "boom",
                "failed")  # fmt: skip
    assert code == 0
    assert step_outputs(tmp_path) == {
        "task": "after",
        "parameters": {"Output": 0},
        "artifacts": {},
        "status": "skipped",
        "failure": "upstream boom did not succeed",
    }
    assert "running task" not in capsys.readouterr().out


def test_a_succeeding_task_reports_succeeded_and_one_outside_a_handler_still_fails(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    assert _run(specs["after"], tmp_path, "--param", "x", "2", "--upstream-status", "boom", "succeeded") == 0
    outputs = step_outputs(tmp_path)
    assert (outputs["status"], outputs["parameters"]) == ("succeeded", {"Output": 3})
    assert _run(specs["boom"], tmp_path, "--param", "n", "1") == 1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def report(status: dsl.PipelineTaskFinalStatus) -> str:
    return f"{status.state}|{status.pipeline_task_name}|{status.pipeline_job_resource_name}|{status.error_message}"


@dsl.pipeline(name="guarded-status")
def guarded_status(n: int = 1) -> None:
    with dsl.ExitHandler(report()):
        first = boom(n=n)
        after(x=first.outputs["Output"])


def test_the_exit_task_gets_kfps_final_status_of_the_handlers_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ir = tmp_path / "guarded-status.yaml"
    compiler.Compiler().compile(guarded_status, str(ir))
    compiled = compile_file(ir, SageMakerConfig())
    root = str(tmp_path / "opt-ml")
    specs = {t["task"]: t for t in (json.loads(b.decode().replace("/opt/ml", root)) for b in compiled.assets.values())}
    # What the definition passes the exit task: the handler, then each task with its recorded status.
    report_step = next(s for s in compiled.definition["Steps"] if s["Name"] == "report")
    arguments = report_step["Arguments"]["AppSpecification"]["ContainerArguments"]
    flags = [a for a in arguments if a in ("--final-status", "--handler-status")]
    assert flags == ["--final-status", "--handler-status", "--handler-status"]
    assert arguments[arguments.index("--final-status") + 1 : arguments.index("--final-status") + 3] == [
        "status",
        "exit-handler-1",
    ]

    monkeypatch.setenv("KUBESAGE_SAGEMAKER_EXECUTION_ARN", "arn:aws:sagemaker:us-east-1:1:pipeline/p/execution/e")
    failed = ["--handler-status", "boom", "failed", "--handler-status", "after", "skipped"]
    assert _run(specs["report"], tmp_path, "--final-status", "status", "exit-handler-1", *failed) == 0
    assert step_outputs(tmp_path)["parameters"]["Output"] == (
        "FAILED|exit-handler-1|arn:aws:sagemaker:us-east-1:1:pipeline/p/execution/e|tasks inside dsl.ExitHandler "
        "'exit-handler-1' did not all succeed: after: skipped, boom: failed"
    )
    ok = ["--handler-status", "boom", "succeeded", "--handler-status", "after", "succeeded"]
    assert _run(specs["report"], tmp_path, "--final-status", "status", "exit-handler-1", *ok) == 0
    assert step_outputs(tmp_path)["parameters"]["Output"] == (
        "SUCCEEDED|exit-handler-1|arn:aws:sagemaker:us-east-1:1:pipeline/p/execution/e|None"
    )
