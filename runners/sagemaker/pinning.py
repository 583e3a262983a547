"""Pin chosen pipeline parameters: compile them in as constants instead of execution parameters.

Anyone allowed to start a pipeline execution (`sagemaker:StartPipelineExecution`) may set every
execution parameter, so `ModelApprovalStatus=Approved` or `min_accuracy=0` would register an
approved model that skipped the gate. A pinned parameter is no longer a parameter of the definition:
its value is written into the task specs (hash-checked, see integrity.py) and the conditions, and
changing it takes `sagemaker:UpdatePipeline`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubesage.errors import ParameterError
from kubesage.runners.sagemaker.ir import Constant, ParameterPlan, PipelineParam, PipelinePlan

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")


def pinned_value(name: str, value: Any, parameter_type: str) -> Any:
    """`value` (a flag's string or a typed value) as the parameter's type, or a ParameterError."""
    try:
        if parameter_type == "STRING":
            return str(value)
        if parameter_type == "BOOLEAN":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("true", "false"):
                raise ValueError(f"expected true or false, got {value!r}")
            return text == "true"
        if parameter_type == "NUMBER_INTEGER":
            number = float(value)
            if not number.is_integer():
                raise ValueError(f"expected an integer, got {value!r}")
            return int(number)
        return float(value)
    except ValueError as exc:
        raise ParameterError(f"pinned parameter '{name}': {exc}") from exc


def approval_status(pins: Mapping[str, Any], parameter: str) -> str | None:
    """The pinned ModelApprovalStatus, checked against the values SageMaker accepts."""
    if parameter not in pins:
        return None
    value = str(pins[parameter])
    if value not in APPROVAL_STATUSES:
        raise ParameterError(f"pinned {parameter} '{value}' must be one of {', '.join(APPROVAL_STATUSES)}")
    return value


def pin_plan(
    plan: PipelinePlan, pins: Mapping[str, Any], *, reserved: tuple[str, ...], data_parameters: tuple[str, ...]
) -> PipelinePlan:
    """A copy of `plan` where every read of a pinned parameter reads its constant value instead.

    `reserved` are kubesage's own parameters that may be pinned without being in the plan (the
    approval status); data parameters cannot be pinned: their value is an S3 input, not a value.
    """
    unknown = sorted(set(pins) - set(plan.parameters) - set(reserved))
    if unknown:
        raise ParameterError(
            f"cannot pin {unknown}: not parameters of pipeline '{plan.name}' "
            f"(parameters: {', '.join(sorted([*plan.parameters, *reserved]))})"
        )
    data = sorted(set(pins) & set(data_parameters))
    if data:
        raise ParameterError(f"cannot pin data parameters {data}: they name the S3 input each run reads")
    values = {
        name: pinned_value(name, value, plan.parameters[name].type)
        for name, value in pins.items()
        if name in plan.parameters
    }
    if not values:
        return plan

    def swap(sources: Mapping[str, Any]) -> dict[str, Any]:
        return {
            key: Constant(values[s.name]) if isinstance(s, PipelineParam) and s.name in values else s
            for key, s in sources.items()
        }

    parameters: dict[str, ParameterPlan] = {n: p for n, p in plan.parameters.items() if n not in values}
    tasks = {k: dataclasses.replace(t, parameters=swap(t.parameters)) for k, t in plan.tasks.items()}
    conditions = {k: dataclasses.replace(c, refs=swap(c.refs)) for k, c in plan.conditions.items()}
    return dataclasses.replace(plan, parameters=parameters, tasks=tasks, conditions=conditions)


def refuse_pinned(pinned: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """A run-time value for a pinned parameter is an error: the definition no longer takes it."""
    clash = sorted(set(given) & set(pinned))
    if clash:
        values = ", ".join(f"{name}={pinned[name]!r}" for name in clash)
        raise ParameterError(
            f"parameter(s) {', '.join(clash)} are pinned in the compiled pipeline ({values}); drop them from "
            "--param, or unpin them (pinned_parameters) to make them execution parameters again"
        )
