"""The local runner's side of issue 26: an input a condition cannot resolve fails the run, naming the
task and the input; kfp.local 2.17 logged a warning, skipped the branch and reported success."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesage.ir.source import PipelineSource, load_pipeline
from kubesage.runners.local.runner import LocalRunner

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _tampered(source: PipelineSource, tmp_path: Path, edit: Any) -> PipelineSource:
    """The compiled IR with one binding broken, as a hand-edited or mis-generated IR file would have it."""
    spec = yaml.safe_load(source.ir_path.read_text(encoding="utf-8"))
    edit(spec)
    target = tmp_path / "tampered.yaml"
    target.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return load_pipeline(str(target), tmp_path)


def _condition_tasks(dag: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: task for name, task in dag["dag"]["tasks"].items() if task.get("triggerPolicy", {}).get("condition")}


def test_an_unresolvable_condition_input_fails_the_run_naming_task_and_input(
    mlflow_sqlite: str, tmp_path: Path
) -> None:
    source = load_pipeline("tests.conformance.pipelines:sensor_alerts", tmp_path / "ir")

    def unbind_mean(spec: dict[str, Any]) -> None:
        # dsl.If/Elif/Else compile to condition tasks inside a `condition-branches-N` DAG.
        branches = next(c for name, c in spec["components"].items() if name.startswith("comp-condition-branches"))
        for task in _condition_tasks(branches).values():
            bindings = task["inputs"]["parameters"]
            if "pipelinechannel--summarize-mean" in bindings:
                bindings["pipelinechannel--summarize-mean"]["componentInputParameter"] = (
                    "pipelinechannel--summarize-average"
                )

    result = LocalRunner(pipeline_root=str(tmp_path / "root")).run(_tampered(source, tmp_path, unbind_mean), {})
    assert result.status == "failed" and result.failure is not None
    # condition-6 (the Elif) and condition-7 (the Else) read the mean; condition-5 (the If) only n
    assert re.search(r"task 'condition-[67]': input 'pipelinechannel--summarize-mean' of its condition", result.failure)
    assert "(parent input 'pipelinechannel--summarize-average')" in result.failure
    assert set(result.skipped_branches) <= {"condition-5"}  # the If on n, evaluated before the failure


def test_an_unresolvable_upstream_output_names_the_task_that_needed_it(mlflow_sqlite: str, tmp_path: Path) -> None:
    source = load_pipeline("tests.conformance.pipelines:sensor_alerts", tmp_path / "ir")

    def rename_output(spec: dict[str, Any]) -> None:
        # condition-1: the plain dsl.If on summarize's NamedTuple field `mean`
        binding = spec["root"]["dag"]["tasks"]["condition-1"]["inputs"]["parameters"]
        binding["pipelinechannel--summarize-mean"]["taskOutputParameter"]["outputParameterKey"] = "average"

    result = LocalRunner(pipeline_root=str(tmp_path / "root")).run(_tampered(source, tmp_path, rename_output), {})
    assert result.status == "failed" and result.failure is not None
    assert (
        "task 'condition-1': input 'pipelinechannel--summarize-mean' (output 'average' of task "
        "'summarize') could not be resolved" in result.failure
    )


def test_inside_a_loop_too_where_kfp_local_swallows_the_iterations_exception(
    mlflow_sqlite: str, tmp_path: Path
) -> None:
    source = load_pipeline("tests.conformance.pipelines:loops_and_subpipelines", tmp_path / "ir")

    def unbind_loop_item(spec: dict[str, Any]) -> None:
        loop_body = spec["components"]["comp-for-loop-2"]
        for task in _condition_tasks(loop_body).values():
            task["inputs"]["parameters"]["pipelinechannel--loop-item-param-1"]["componentInputParameter"] = (
                "pipelinechannel--nowhere"
            )

    broken = _tampered(source, tmp_path, unbind_loop_item)
    runner = LocalRunner(pipeline_root=str(tmp_path / "root"))
    result = runner.run(broken, {})
    assert result.status == "failed" and result.failure is not None
    assert "input 'pipelinechannel--loop-item-param-1' of its condition" in result.failure
    assert "parent input 'pipelinechannel--nowhere'" in result.failure
    assert "could not be resolved" in result.failure
