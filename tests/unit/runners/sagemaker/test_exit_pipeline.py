"""A pipeline as the exit task of dsl.ExitHandler: inlined, every step of it waits for the handler's tasks,
those reading dsl.PipelineTaskFinalStatus get the handler's, and the status step comes after all of them.

The shape is kubeflow/pipelines' pipeline_as_exit_task (a dsl.If on the state the exit pipeline reads).
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler

from kubesage.runners.sagemaker import shim
from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest
from tests.corpus.sagemaker import nested
from tests.unit.runners.sagemaker.ir_file import compile_file


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    ir = tmp_path_factory.mktemp("exit") / "p.yaml"
    compiler.Compiler().compile(nested.pipeline_as_exit_task_with_status, str(ir))
    return compile_file(ir, SageMakerConfig(bucket="kubesage-corpus"))


def _steps(compiled: CompiledPipeline) -> dict[str, dict[str, Any]]:
    found = {}
    for step in compiled.definition["Steps"]:
        found[step["Name"]] = step
        for inner in step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []):
            found[inner["Name"]] = inner
    return found


def _status(task: str) -> dict[str, Any]:
    json_get = {"Path": "status", "PropertyFile": {"Get": f"Steps.{task}.PropertyFiles.{task}-outputs"}}
    return {"Std:JsonGet": json_get}


def test_every_step_of_the_exit_pipeline_waits_for_the_handlers_tasks(compiled: CompiledPipeline) -> None:
    steps = _steps(compiled)
    assert steps["notify-on-failure-run-state"]["DependsOn"] == ["echo", "echo-2"]
    # inside the dsl.If: it too waits, though its ConditionStep only reads run-state
    assert steps["notify-on-failure-say"]["DependsOn"] == ["echo", "echo-2"]
    for task in ("echo", "echo-2"):
        assert "--continue-on-failure" in steps[task]["Arguments"]["AppSpecification"]["ContainerArguments"]


def test_the_status_step_comes_after_the_whole_exit_pipeline(compiled: CompiledPipeline) -> None:
    status = _steps(compiled)["exit-handler-1-status"]
    assert status["DependsOn"] == ["notify-on-failure-condition-1", "notify-on-failure-run-state"]
    assert status["Arguments"]["Conditions"] == [
        {"Type": "Equals", "LeftValue": _status("echo"), "RightValue": "succeeded"},
        {"Type": "Equals", "LeftValue": _status("echo-2"), "RightValue": "succeeded"},
    ]
    assert [s["Name"] for s in status["Arguments"]["ElseSteps"]] == ["exit-handler-1-failed"]


def test_the_task_reading_the_status_gets_the_handlers(compiled: CompiledPipeline) -> None:
    arguments = _steps(compiled)["notify-on-failure-run-state"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    start = arguments.index("--final-status")
    assert arguments[start:] == [
        "--final-status", "status", "exit-handler-1",
        "--handler-status", "echo", {"Std:Join": {"On": "", "Values": [_status("echo")]}},
        "--handler-status", "echo-2", {"Std:Join": {"On": "", "Values": [_status("echo-2")]}},
    ]  # fmt: skip


def test_a_dict_input_of_the_exit_pipeline_gets_kfps_status_struct(
    compiled: CompiledPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")
    root = str(tmp_path / "opt-ml")
    (task,) = [
        t
        for t in (json.loads(b.decode().replace("/opt/ml", root)) for b in compiled.assets.values())
        if t["task"] == "notify-on-failure-run-state"
    ]
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    body = spec_bytes(task)
    (spec_dir / f"{task['task']}.json").write_bytes(body)
    argv = ["--task", task["task"], "--spec-dir", str(spec_dir), "--spec-sha256", spec_digest(body)]
    statuses = ["--handler-status", "echo", "failed", "--handler-status", "echo-2", "skipped"]
    code = shim.main([*argv, "--workdir", str(tmp_path / "w"), "--final-status", "status", "exit-handler-1", *statuses])
    assert code == 0
    outputs = tmp_path / "opt-ml" / "processing" / "output" / "kubesage-outputs" / "outputs.json"
    assert json.loads(outputs.read_text())["parameters"] == {"Output": "FAILED"}
