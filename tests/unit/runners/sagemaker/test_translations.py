"""What the round-two translations put in the definition: fan-out steps, OneOf copies, imports.

The corpus (test_corpus.py) checks step names and report lines; these check the values SageMaker
acts on: where each copy sits, what each step's inputs and arguments reference.
"""

from pathlib import Path
from typing import Any

import pytest
from kfp import compiler

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from tests.corpus.sagemaker import conditions, importers, loops, nested
from tests.unit.runners.sagemaker.ir_file import compile_file

CONFIG = SageMakerConfig(bucket="kubesage-translations")


def _compile(function: Any, tmp_path: Path, config: SageMakerConfig = CONFIG) -> CompiledPipeline:
    ir = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(function, str(ir))
    return compile_file(ir, config)


def _steps(compiled: CompiledPipeline) -> dict[str, dict[str, Any]]:
    return {step["Name"]: step for step in compiled.definition["Steps"]}


def _text(value: Any) -> Any:
    """A runtime value on the command line: the SDK's `to_string()`, a Join around it."""
    return {"Std:Join": {"On": "", "Values": [value]}}


def _inputs(step: dict[str, Any]) -> dict[str, Any]:
    return {i["InputName"]: i["S3Input"]["S3Uri"] for i in step["Arguments"]["ProcessingInputs"]}


def test_a_runtime_loop_is_one_uncached_step_reading_the_items_through_jsonget(tmp_path: Path) -> None:
    steps = _steps(_compile(loops.loop_over_task_output, tmp_path))
    fan = steps["for-loop-1"]
    assert fan["Type"] == "Processing"
    assert "CacheConfig" not in fan
    args = fan["Arguments"]["AppSpecification"]["ContainerArguments"]
    at = args.index("kubesage-items")
    assert args[at - 1] == "--param"
    assert args[at + 1] == _text(
        {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.numbers.PropertyFiles.numbers-outputs"},
                "Path": "parameters.Output",
            }
        }
    )


def test_the_collected_list_of_a_runtime_loop_is_its_gathered_output(tmp_path: Path) -> None:
    steps = _steps(_compile(loops.runtime_loop_chain, tmp_path))
    args = steps["total"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[args.index("xs") + 1] == _text(
        {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.for-loop-1.PropertyFiles.for-loop-1-outputs"},
                "Path": "parameters.count_lines__Output",
            }
        }
    )
    # make-data's artifact is read inside the body only: it stays on the job's disk, no output of its own
    outputs = [o["OutputName"] for o in steps["for-loop-1"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]]
    assert outputs == ["kubesage-outputs"]


def test_collected_artifacts_are_one_prefix_read_by_the_consumer(tmp_path: Path) -> None:
    steps = _steps(_compile(loops.loop_collected_artifacts, tmp_path))
    assert _inputs(steps["count-all"])["datasets"] == {
        "Std:Join": {
            "On": "",
            "Values": [
                {"Get": "Steps.for-loop-2.ProcessingOutputConfig.Outputs['make-data-data'].S3Output.S3Uri"},
                "/",
            ],
        }
    }


def test_each_one_of_copy_sits_in_its_branch_and_reads_that_branch(tmp_path: Path) -> None:
    steps = _steps(_compile(conditions.one_of_parameter, tmp_path))
    for condition, producer in (("condition-2", "say"), ("condition-3", "say-2")):
        inside = {s["Name"]: s for s in steps[condition]["Arguments"]["IfSteps"]}
        assert set(inside) == {producer, f"say-3-{condition}"}
        copy = inside[f"say-3-{condition}"]
        args = copy["Arguments"]["AppSpecification"]["ContainerArguments"]
        assert args[args.index("text") + 1] == _text(
            {
                "Std:JsonGet": {
                    "PropertyFile": {"Get": f"Steps.{producer}.PropertyFiles.{producer}-outputs"},
                    "Path": "parameters.Output",
                }
            }
        )
        assert "DependsOn" not in copy  # no wait on the other branch's steps, which never run
        assert steps[condition]["Arguments"]["ElseSteps"] == []


def test_a_one_of_artifact_copy_trains_on_its_branchs_data(tmp_path: Path) -> None:
    steps = _steps(_compile(conditions.one_of_artifact, tmp_path))
    inside = {s["Name"]: s for s in steps["condition-3"]["Arguments"]["IfSteps"]}
    channels = {c["ChannelName"]: c for c in inside["fit-condition-3"]["Arguments"]["InputDataConfig"]}
    uri = channels["data"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert uri["Std:Join"]["Values"][0] == {
        "Get": "Steps.make-data-2.ProcessingOutputConfig.Outputs['data'].S3Output.S3Uri"
    }


def test_an_https_import_has_no_channel_and_a_computed_uri_is_a_jsonget_channel(tmp_path: Path) -> None:
    steps = _steps(_compile(importers.import_https_checked, tmp_path))
    assert set(_inputs(steps["count-lines"])) == {"kubesage-spec"}
    assert {c["ChannelName"] for c in steps["fit"]["Arguments"]["InputDataConfig"]} == {"kubesage-spec"}
    computed = _steps(_compile(importers.import_computed_uri, tmp_path))
    assert _inputs(computed["count-lines"])["data"] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.locate.PropertyFiles.locate-outputs"},
            "Path": "parameters.Output",
        }
    }


def test_an_https_import_under_network_isolation_is_refused_with_what_to_do(tmp_path: Path) -> None:
    isolated = CONFIG.model_copy(update={"enable_network_isolation": True})
    with pytest.raises(UnsupportedFeatureError) as caught:
        _compile(importers.import_https_unchecked, tmp_path, isolated)
    assert str(caught.value) == (
        "task 'count-lines': input 'data' is fetched from https://example.com/rows.csv by the job, "
        "which enable_network_isolation cuts off; copy it to S3 and import the s3:// URI, or turn isolation off"
    )


def test_an_exit_handler_records_failures_runs_its_exit_task_then_fails_the_execution(tmp_path: Path) -> None:
    steps = _steps(_compile(nested.exit_handler_chain, tmp_path))

    def args(name: str) -> list[Any]:
        return list(steps[name]["Arguments"]["AppSpecification"]["ContainerArguments"])

    def status(task: str) -> dict[str, Any]:
        return {
            "Std:JsonGet": {"PropertyFile": {"Get": f"Steps.{task}.PropertyFiles.{task}-outputs"}, "Path": "status"}
        }

    assert "--continue-on-failure" in args("make-data") and "--upstream-status" not in args("make-data")
    counted = args("count-lines")
    assert counted[counted.index("--upstream-status") + 1 : counted.index("--upstream-status") + 3] == [
        "make-data",
        _text(status("make-data")),
    ]
    assert all("CacheConfig" not in steps[t] for t in ("make-data", "count-lines", "echo"))
    assert "--continue-on-failure" not in args("say")
    assert sorted(steps["say"]["DependsOn"]) == ["count-lines", "echo", "make-data"]
    gate = steps["exit-handler-1-status"]
    assert gate["DependsOn"] == ["say"]
    assert gate["Arguments"]["IfSteps"] == []
    assert [c["LeftValue"] for c in gate["Arguments"]["Conditions"]] == [
        status("count-lines"),
        status("echo"),
        status("make-data"),
    ]
    assert {c["RightValue"] for c in gate["Arguments"]["Conditions"]} == {"succeeded"}
    (fail,) = gate["Arguments"]["ElseSteps"]
    assert fail["Type"] == "Fail" and fail["Name"] == "exit-handler-1-failed"
    assert fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"][:3] == [
        "tasks inside dsl.ExitHandler 'exit-handler-1' did not all succeed:",
        "count-lines:",
        status("count-lines"),
    ]
