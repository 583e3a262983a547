"""`.ignore_upstream_failure()` on SageMaker: the compiled steps (which record, which wait, the status step)
and the shim running the task for real (no Docker) with an upstream that failed.

KFP runs such a task once its upstream tasks completed, failed or not; an input from an upstream that
failed takes its default (KFP's SDK requires one), and the run still ends Failed.
"""

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Output

from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from tests.corpus.sagemaker import failures
from tests.unit.runners.sagemaker.ir_file import compile_file, run_task, step_outputs, task_specs


def _compiled(pipeline: Any, tmp_path: Path) -> CompiledPipeline:
    ir = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipeline, str(ir))
    return compile_file(ir, SageMakerConfig(bucket="kubesage-corpus"))


def _steps(compiled: CompiledPipeline) -> dict[str, dict[str, Any]]:
    return {s["Name"]: s for s in compiled.definition["Steps"]}


def _status(task: str) -> dict[str, Any]:
    return {"Std:JsonGet": {"Path": "status", "PropertyFile": {"Get": f"Steps.{task}.PropertyFiles.{task}-outputs"}}}


def _arguments(step: dict[str, Any]) -> list[Any]:
    return list(step["Arguments"]["AppSpecification"]["ContainerArguments"])


def test_upstream_tasks_record_their_failure_and_the_task_gets_their_statuses(tmp_path: Path) -> None:
    steps = _steps(_compiled(failures.ignore_upstream_reads_outputs, tmp_path))
    for upstream in ("make-data", "say"):
        assert _arguments(steps[upstream])[-1] == "--continue-on-failure"
        assert "CacheConfig" not in steps[upstream]  # a recorded failure must not be cached
    keep = _arguments(steps["keep"])
    assert "--continue-on-failure" not in keep
    tail = keep[keep.index("--upstream-completed") :]
    assert tail == [
        "--upstream-completed", "make-data", {"Std:Join": {"On": "", "Values": [_status("make-data")]}},
        "--upstream-completed", "say", {"Std:Join": {"On": "", "Values": [_status("say")]}},
        "--input-from", "data", "make-data",
        "--input-from", "text", "say",
    ]  # fmt: skip
    assert steps["keep"]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
    status = steps["keep-upstream-status"]
    assert status["DependsOn"] == ["keep"]
    assert status["Arguments"]["Conditions"] == [
        {"Type": "Equals", "LeftValue": _status("make-data"), "RightValue": "succeeded"},
        {"Type": "Equals", "LeftValue": _status("say"), "RightValue": "succeeded"},
    ]
    assert status["Arguments"]["IfSteps"] == []
    (fail,) = status["Arguments"]["ElseSteps"]
    assert fail["Name"] == "keep-upstream-failed"
    assert fail["Arguments"]["ErrorMessage"] == {
        "Std:Join": {
            "On": " ",
            "Values": [
                "tasks before 'keep' (ignore_upstream_failure) did not all succeed:",
                "make-data:",
                _status("make-data"),
                "say:",
                _status("say"),
            ],
        }
    }


def test_the_execution_fails_only_after_what_runs_after_the_task(tmp_path: Path) -> None:
    steps = _steps(_compiled(failures.ignore_upstream_then_more, tmp_path))
    assert steps["tidy-upstream-status"]["DependsOn"] == ["condition-1", "tidy"]
    assert steps["tidy"]["DependsOn"] == ["echo"]  # .after(): ordering only


def test_final_status_of_the_one_upstream_task(tmp_path: Path) -> None:
    arguments = _arguments(_steps(_compiled(failures.ignore_upstream_final_status, tmp_path))["status-of"])
    start = arguments.index("--final-status")
    assert arguments[start : start + 6] == [
        "--final-status", "status", "say",
        "--handler-status", "say", {"Std:Join": {"On": "", "Values": [_status("say")]}},
    ]  # fmt: skip


def test_without_upstream_tasks_nothing_changes(tmp_path: Path) -> None:
    steps = _steps(_compiled(failures.ignore_upstream_no_upstream, tmp_path))
    assert list(steps) == ["tidy"]
    assert "--upstream-completed" not in _arguments(steps["tidy"])


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def produce(n: int, data: Output[Dataset]) -> str:
    if n > 0:
        raise RuntimeError("boom")
    with open(data.path, "w") as fh:  # noqa: PTH123
        fh.write("rows")
    return "made"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def keep(text: str = "default", data: Input[Dataset] = None) -> str:
    return f"{text}|{'none' if data is None else open(data.path).read()}"  # noqa: PTH123


@dsl.pipeline(name="keeps")
def keeps(n: int = 1) -> None:
    made = produce(n=n)
    keep(text=made.outputs["Output"], data=made.outputs["data"]).ignore_upstream_failure()


@pytest.fixture(autouse=True)
def venv_python_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")


def _specs(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return task_specs(keeps, tmp_path, SageMakerConfig(bucket="kubesage-corpus"))


def _run(task: dict[str, Any], tmp_path: Path, *extra: str) -> int:
    return run_task(task, tmp_path / "spec", tmp_path / "w" / task["task"], *extra)


FROM = ["--input-from", "data", "produce", "--input-from", "text", "produce"]


def test_a_failed_upstream_gives_the_task_its_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = _specs(tmp_path)
    assert _run(specs["produce"], tmp_path, "--param", "n", "1", "--continue-on-failure") == 0
    recorded = step_outputs(tmp_path)
    assert (recorded["status"], recorded["parameters"]) == ("failed", {"Output": ""})
    # the stand-in artifact keeps the S3 input from being empty; the task does not get it
    channel = tmp_path / "opt-ml" / "processing" / "input" / "data"
    channel.mkdir(parents=True)
    (channel / "data").write_text("")
    code = _run(specs["keep"], tmp_path, "--param", "text", "", "--upstream-completed", "produce", "failed", *FROM)
    assert code == 0
    outputs = step_outputs(tmp_path)
    assert (outputs["status"], outputs["parameters"]) == ("succeeded", {"Output": "default|none"})
    out = capsys.readouterr().out
    assert "input 'data' takes its default ('produce' failed)" in out
    assert "input 'text' takes its default ('produce' failed)" in out


def test_a_succeeded_upstream_gives_the_task_its_outputs(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    channel = tmp_path / "opt-ml" / "processing" / "input" / "data"
    channel.mkdir(parents=True)
    (channel / "data").write_text("rows")
    code = _run(specs["keep"], tmp_path, "--param", "text", "made", "--upstream-completed", "produce", "succeeded",
                *FROM)  # fmt: skip
    assert code == 0
    assert step_outputs(tmp_path)["parameters"] == {"Output": "made|rows"}
