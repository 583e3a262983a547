"""KFP trigger conditions (`dsl.If/Elif/Else`, parsed by `cel.py`) -> nested SageMaker ConditionSteps.

A ConditionStep ANDs its list of conditions and has no And inside Or/Not, so a top-level `&&` is
the list and any other `&&` is rewritten with De Morgan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel
from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.compiler.order import condition_depth
from kubesage.runners.sagemaker.ir import Collected, Constant, FinalStatus, ParamSource, PipelineParam


def condition_expressions(
    ctx: BuildContext, key: str, expression: cel.Expr, refs: Mapping[str, ParamSource]
) -> list[Any]:
    """A CEL expression as the list of Condition* that ConditionStep ANDs together."""
    from sagemaker.core.workflow import conditions as c

    def operand(node: cel.Expr) -> Any:
        if isinstance(node, cel.Literal):
            return node.value
        if isinstance(node, cel.Ref):
            source = refs[node.name]
            if isinstance(source, Constant):
                return source.value
            if isinstance(source, PipelineParam):
                return ctx.parameters[source.name]
            if isinstance(source, Collected):
                raise UnsupportedFeatureError(
                    f"task '{key}': a condition on a dsl.Collected list of loop outputs has no SageMaker "
                    "condition; compare one iteration's output, or decide inside a task"
                )
            if isinstance(source, FinalStatus):
                raise UnsupportedFeatureError(
                    f"task '{key}': a condition on dsl.PipelineTaskFinalStatus has no SageMaker condition; "
                    "read the status in the exit task's component and decide there"
                )
            if source.task not in ctx.property_files:
                raise UnsupportedFeatureError(
                    f"task '{key}': condition reads '{source.key}' of '{source.task}', which has no PropertyFile"
                )
            return ctx.output_parameter(source)
        raise UnsupportedFeatureError(f"task '{key}': a condition operand must be a value, not {node}")

    comparisons = {
        "==": c.ConditionEquals,
        "<": c.ConditionLessThan,
        "<=": c.ConditionLessThanOrEqualTo,
        ">": c.ConditionGreaterThan,
        ">=": c.ConditionGreaterThanOrEqualTo,
    }

    def build(node: cel.Expr) -> Any:
        if isinstance(node, cel.Compare):
            left, right = operand(node.left), operand(node.right)
            if node.op == "!=":
                return c.ConditionNot(expression=c.ConditionEquals(left=left, right=right))
            return comparisons[node.op](left=left, right=right)
        if isinstance(node, cel.Not):
            return c.ConditionNot(expression=build(node.operand))
        if isinstance(node, cel.Or):
            return c.ConditionOr(conditions=[build(o) for o in node.operands])
        if isinstance(node, cel.And):
            # SageMaker has no And inside Or/Not: De Morgan, a && b == !(!a || !b).
            return c.ConditionNot(
                expression=c.ConditionOr(conditions=[c.ConditionNot(expression=build(o)) for o in node.operands])
            )
        raise UnsupportedFeatureError(f"task '{key}': a bare value {node} is not a condition")

    if isinstance(expression, cel.And):
        return [build(o) for o in expression.operands]
    return [build(expression)]


def condition_steps(ctx: BuildContext, steps_of: Callable[[str], list[Any]]) -> dict[str, Any]:
    """One ConditionStep per condition group, by group key; `steps_of(task)` = a task's steps.

    Innermost groups are built first, so a nested ConditionStep exists before its parent lists it."""
    from sagemaker.mlops.workflow.condition_step import ConditionStep

    built: dict[str, Any] = {}

    def members(group: str) -> list[Any]:
        found: list[Any] = []
        for member in ctx.plan.conditions[group].members:
            found += [built[member]] if member in ctx.plan.conditions else steps_of(member)
        return found

    for key in sorted(ctx.plan.conditions, key=lambda k: -condition_depth(ctx.plan, k)):
        group = ctx.plan.conditions[key]
        built[key] = ConditionStep(
            name=key,
            display_name=group.display_name,
            conditions=condition_expressions(ctx, key, group.expression, group.refs),
            if_steps=members(key),
            else_steps=[],
        )
    return built
