"""The local runner's condition evaluation (runners/local/conditions.py): KFP's CEL as KFP writes it,
operands resolved from the condition task's own inputs, and an error naming the task and the input
instead of kfp.local's "could not resolve" warning followed by a skipped branch."""

from __future__ import annotations

from typing import Any

import pytest
from kfp.local import io
from kfp.pipeline_spec import pipeline_spec_pb2

from kubesage.errors import UnresolvedInputError
from kubesage.runners.local.conditions import (
    SkippedBranch,
    evaluate,
    readable,
    referenced_inputs,
    resolve_condition_inputs,
    skipped_event,
)

MEAN = "inputs.parameter_values['pipelinechannel--summarize-mean']"
N = "inputs.parameter_values['pipelinechannel--summarize-n']"


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        (f"{MEAN} > 2.5", {"pipelinechannel--summarize-mean": 4.85}, True),
        (f"{MEAN} > 2.5", {"pipelinechannel--summarize-mean": 1.0}, False),
        # KFP writes int() around integer channels; the backend holds every number as a double.
        (f"int({N}) >= 300", {"pipelinechannel--summarize-n": 300}, True),
        (
            f"double(int({N})) > {MEAN}",
            {"pipelinechannel--summarize-n": 3, "pipelinechannel--summarize-mean": 2.5},
            True,
        ),
        # dsl.Elif / dsl.Else: negations joined with &&
        (
            f"!({MEAN} > 2.5) && int({N}) > 10",
            {"pipelinechannel--summarize-mean": 1.0, "pipelinechannel--summarize-n": 20},
            True,
        ),
        (f"!({MEAN} > 2.5) || false", {"pipelinechannel--summarize-mean": 4.0}, False),
        (
            "inputs.parameter_values['pipelinechannel--alert-Output'] != ''",
            {"pipelinechannel--alert-Output": "it's"},
            True,
        ),
        (
            "inputs.parameter_values['pipelinechannel--note-Output'] == true",
            {"pipelinechannel--note-Output": True},
            True,
        ),
        ("inputs.parameter_values['pipelinechannel--city'] == 'Zürich'", {"pipelinechannel--city": "Zürich"}, True),
    ],
)
def test_conditions_evaluate_as_cel_with_kfp_typed_values(
    condition: str, values: dict[str, Any], expected: bool
) -> None:
    assert referenced_inputs(condition) == list(values)
    assert evaluate("condition-1", condition, values) is expected


def test_a_condition_that_is_not_a_boolean_fails_naming_the_task() -> None:
    with pytest.raises(UnresolvedInputError, match=r"task 'condition-7': condition .* gave .* not true or false"):
        evaluate("condition-7", MEAN, {"pipelinechannel--summarize-mean": 1.0})
    with pytest.raises(UnresolvedInputError, match=r"task 'condition-7': condition .* could not be evaluated"):
        evaluate("condition-7", f"{MEAN} > 'a'", {"pipelinechannel--summarize-mean": 1.0})


def _condition_task(condition: str, bindings: dict[str, tuple[str, str]]) -> pipeline_spec_pb2.PipelineTaskSpec:
    spec = pipeline_spec_pb2.PipelineTaskSpec()
    spec.trigger_policy.condition = condition
    for name, (task, key) in bindings.items():
        if task:
            spec.inputs.parameters[name].task_output_parameter.producer_task = task
            spec.inputs.parameters[name].task_output_parameter.output_parameter_key = key
        else:
            spec.inputs.parameters[name].component_input_parameter = key
    return spec


def test_operands_resolve_from_the_condition_tasks_own_inputs_through_enclosing_scopes() -> None:
    """The bug: kfp.local guessed from the name `summarize-mean` that it was a parent input."""
    outer = io.IOStore()
    outer.put_task_output("summarize", "mean", 4.85)
    outer.put_parent_input("threshold", 2.5)
    inner = io.IOStore(parent=outer)
    spec = _condition_task(
        f"{MEAN} > inputs.parameter_values['pipelinechannel--threshold']",
        {"pipelinechannel--summarize-mean": ("summarize", "mean"), "pipelinechannel--threshold": ("", "threshold")},
    )
    assert resolve_condition_inputs("condition-1", spec, inner) == {
        "pipelinechannel--summarize-mean": 4.85,
        "pipelinechannel--threshold": 2.5,
    }


def test_an_unresolvable_operand_names_the_task_the_input_and_its_source() -> None:
    store = io.IOStore()
    store.put_task_output("summarize", "n", 300)
    spec = _condition_task(f"{MEAN} > 2.5", {"pipelinechannel--summarize-mean": ("summarize", "mean")})
    with pytest.raises(
        UnresolvedInputError,
        match=r"task 'condition-1': input 'pipelinechannel--summarize-mean' of its condition .* could not be "
        r"resolved \(output 'mean' of task 'summarize'\): .*no output named 'mean'",
    ):
        resolve_condition_inputs("condition-1", spec, store)
    undeclared = _condition_task(f"{MEAN} > 2.5", {})
    with pytest.raises(UnresolvedInputError, match=r"reads input 'pipelinechannel--summarize-mean', which the task"):
        resolve_condition_inputs("condition-1", undeclared, store)


def test_a_skipped_branch_reads_as_the_pipeline_author_wrote_it() -> None:
    condition = f"{MEAN} > inputs.parameter_values['pipelinechannel--threshold']"
    assert readable(condition) == "summarize-mean > threshold"
    event = skipped_event(
        SkippedBranch(
            "condition-1", condition, {"pipelinechannel--summarize-mean": 1.5, "pipelinechannel--threshold": 2.5}
        )
    )
    assert (event.name, event.status) == ("condition-1", "skipped")
    assert event.message == "summarize-mean > threshold is false (summarize-mean=1.5, threshold=2.5)"
