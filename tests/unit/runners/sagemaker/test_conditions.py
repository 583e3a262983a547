"""KFP trigger conditions -> SageMaker Condition* requests (runners/sagemaker/compiler/conditions.py)."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel
from kubesage.runners.sagemaker.compiler.conditions import condition_expressions
from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.compiler.session import offline_env
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import Constant, ParamSource, PipelineParam, PipelinePlan, TaskOutputParam

P = "inputs.parameter_values['pipelinechannel--{}']"
REFS: dict[str, ParamSource] = {
    "pipelinechannel--n": PipelineParam("n"),
    "pipelinechannel--k": Constant(5),
    "pipelinechannel--acc": TaskOutputParam("train", "accuracy"),
}


@pytest.fixture(scope="module")
def ctx() -> Iterator[BuildContext]:
    with offline_env("us-east-1"):
        from sagemaker.core.workflow.parameters import ParameterInteger

        plan = PipelinePlan(name="p", description="", parameters={}, tasks={}, conditions={})
        yield BuildContext(
            plan=plan,
            config=SageMakerConfig(),
            session=None,
            name="p",
            parameters={"n": ParameterInteger(name="n", default_value=1)},
            data_parameters=(),
        )


def _requests(ctx: BuildContext, text: str) -> list[dict[str, Any]]:
    """The conditions as the definition holds them (pipeline variables as their `Get` expressions)."""
    expression = cel.parse_condition(text, task="gate")
    conditions = condition_expressions(ctx, "gate", expression, REFS)
    return list(json.loads(json.dumps([c.to_request() for c in conditions], default=lambda v: v.expr)))


def _not(condition: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "Not", "Condition": condition}


N = {"Get": "Parameters.n"}


def test_top_level_and_is_the_list_of_conditions(ctx: BuildContext) -> None:
    assert _requests(ctx, f"{P.format('n')} >= 3 && {P.format('k')} != 2") == [
        {"Type": "GreaterThanOrEqualTo", "LeftValue": N, "RightValue": 3},
        _not({"Type": "Equals", "LeftValue": 5, "RightValue": 2}),
    ]


def test_and_inside_not_is_rewritten_with_de_morgan(ctx: BuildContext) -> None:
    equals = {"Type": "Equals", "LeftValue": N, "RightValue": 1}
    less = {"Type": "LessThan", "LeftValue": 5, "RightValue": 2}
    # !(a && b) -> !(!(!a || !b)): SageMaker has no And inside Not or Or
    assert _requests(ctx, f"!({P.format('n')} == 1 && {P.format('k')} < 2)") == [
        _not(_not({"Type": "Or", "Conditions": [_not(equals), _not(less)]}))
    ]


def test_an_output_without_a_property_file_is_refused(ctx: BuildContext) -> None:
    with pytest.raises(UnsupportedFeatureError, match="task 'gate': condition reads 'accuracy' of 'train'"):
        _requests(ctx, f"{P.format('acc')} > 0.5")
