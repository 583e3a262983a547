"""What the shim reads to run a fan-out step (`fanout.py`): the loop body, per item, and what it gathers."""

from __future__ import annotations

from typing import Any

from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import TaskPlan


def fan_out_spec(task: TaskPlan) -> dict[str, Any]:
    """The `fan_out` section of a fan-out step's task spec: the body in run order and the gathered outputs."""
    plan = task.fan_out
    assert plan is not None
    return {
        "loop": plan.loop,
        "parallelism": plan.parallelism,
        "body": [
            {
                "task": body.local,
                "display_name": body.display_name,
                "component": body.component,
                "command": list(body.container.get("command", [])),
                "args": list(body.container.get("args", [])),
                "env": {e["name"]: e["value"] for e in body.container.get("env", [])},
                "inputs": body.inputs,
                "artifacts": body.artifacts,
            }
            for body in plan.body
        ],
        "collected": {key: list(source) for key, source in sorted(plan.collected.items())},
        "collected_artifacts": {key: list(source) for key, source in sorted(plan.collected_artifacts.items())},
    }


def collected_artifact_file(ctx: BuildContext, producer: str, key: str) -> str | None:
    """For an input reading a fan-out step's gathered artifact: the file name under each `<i>/`."""
    plan = ctx.plan.tasks[producer].fan_out
    if plan is None or key not in plan.collected_artifacts:
        return None
    return plan.collected_artifacts[key][1]


def fan_out_line(task: TaskPlan, config: SageMakerConfig) -> str:
    """`--explain`: the loop runs inside one job, and what its `parallelism` becomes there."""
    plan = task.fan_out
    assert plan is not None
    items = "a list known only at run time" if plan.runtime else "a literal list (its artifacts are collected)"
    bound = (
        f"parallelism={plan.parallelism} -> at most {plan.parallelism} items at once (fewer if the instance has "
        "fewer cores)"
        if plan.parallelism
        else "no parallelism given -> as many items at once as the instance has cores"
    )
    gathered = sorted(plan.collected) + sorted(f"{k}/<i>/" for k in plan.collected_artifacts)
    return (
        f"dsl.ParallelFor '{plan.loop}' over {items} -> ProcessingStep '{task.key}' on "
        f"{config.instance_count(task.key)} x {config.instance_type(task.key)}: the fan-out runs inside one job, "
        f"body [{', '.join(b.local for b in plan.body)}] once per item in parallel processes; {bound}; "
        f"gathers {gathered or '[]'} (dsl.Collected); the step fails naming the items that failed"
    )
