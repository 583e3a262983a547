"""What the shim reads to run a fan-out step (`fanout.py`): the loop body DAG, per item, and what it gathers."""

from __future__ import annotations

from typing import Any

from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import BodyGroup, BodyTask, TaskPlan


def _member_spec(member: BodyTask | BodyGroup) -> dict[str, Any]:
    if isinstance(member, BodyTask):
        return {
            "kind": "task",
            "task": member.local,
            "display_name": member.display_name,
            "component": member.component,
            "command": list(member.container.get("command", [])),
            "args": list(member.container.get("args", [])),
            "env": {e["name"]: e["value"] for e in member.container.get("env", [])},
            "inputs": member.inputs,
            "artifacts": member.artifacts,
        }
    return group_spec(member)


def group_spec(group: BodyGroup) -> dict[str, Any]:
    """A body DAG as the shim walks it: members in run order, how its inputs are bound, its outputs."""
    spec: dict[str, Any] = {
        "kind": group.kind,
        "task": group.local,
        "inputs": group.inputs,
        "artifacts": group.artifacts,
        "members": [_member_spec(m) for m in group.members],
        "outputs": {name: [list(s) for s in sources] for name, sources in group.outputs.items()},
        "output_artifacts": {name: [list(s) for s in sources] for name, sources in group.output_artifacts.items()},
    }
    if group.condition:
        spec["condition"] = group.condition
    if group.items is not None:
        spec["items"] = group.items
    if group.item_input:
        spec["item_input"] = group.item_input
    return spec


def fan_out_spec(task: TaskPlan) -> dict[str, Any]:
    """The `fan_out` section of a fan-out step's task spec: the body DAG and the gathered outputs."""
    plan = task.fan_out
    assert plan is not None
    return {
        "loop": plan.loop,
        "parallelism": plan.parallelism,
        "body": group_spec(plan.body),
        "collected": dict(sorted(plan.collected.items())),
        "collected_artifacts": dict(sorted(plan.collected_artifacts.items())),
        "artifact_files": dict(sorted(plan.artifact_files.items())),
    }


def collected_artifact_file(ctx: BuildContext, producer: str, key: str) -> str | None:
    """For an input reading a fan-out step's gathered artifact: the file name under each `<i>/`."""
    plan = ctx.plan.tasks[producer].fan_out
    if plan is None or key not in plan.artifact_files:
        return None
    return plan.artifact_files[key]


def describe(group: BodyGroup) -> str:
    """The body as `--explain` shows it: `[double, for-loop-4 (loop over [1, 2, 3]) [condition-5 (if ...) [...]]]`."""
    parts = []
    for member in group.members:
        if isinstance(member, BodyTask):
            parts.append(member.local)
        elif member.kind == "condition":
            parts.append(f"{member.local} (dsl.If {member.condition}) {describe(member)}")
        elif member.kind == "loop":
            items = member.items or {}
            over = f"{items['raw']}" if "raw" in items else f"input '{items.get('input', '')}'"
            parts.append(f"{member.local} (dsl.ParallelFor over {over}, its iterations in turn) {describe(member)}")
        else:
            parts.append(f"{member.local} (inlined) {describe(member)}")
    return f"[{', '.join(parts)}]"


def fan_out_line(task: TaskPlan, config: SageMakerConfig) -> str:
    """`--explain`: the loop runs inside one job, and what its `parallelism` becomes there."""
    plan = task.fan_out
    assert plan is not None
    items = "a list known only at run time" if plan.runtime else "a literal list (its outputs are collected)"
    bound = (
        f"parallelism={plan.parallelism} -> at most {plan.parallelism} items at once (fewer if the instance has "
        "fewer cores)"
        if plan.parallelism
        else "no parallelism given -> as many items at once as the instance has cores"
    )
    gathered = sorted(plan.collected) + sorted(f"{k}/<i>/" for k in plan.collected_artifacts)
    nested = any(isinstance(m, BodyGroup) for m in plan.body.members)
    semantics = (
        "; conditions are evaluated per item (CEL, as KFP), a skipped task runs nothing, nested loops run inside "
        "their item, sub-pipelines inline; dsl.Collected of a task skipped in an item fails that item, as kfp.local"
        if nested
        else ""
    )
    return (
        f"dsl.ParallelFor '{plan.loop}' over {items} -> ProcessingStep '{task.key}' on "
        f"{config.instance_count(task.key)} x {config.instance_type(task.key)}: the fan-out runs inside one job, "
        f"body {describe(plan.body)} once per item in parallel processes; {bound}; "
        f"gathers {gathered or '[]'} (dsl.Collected){semantics}; the step fails naming the items that failed"
    )
