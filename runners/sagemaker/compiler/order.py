"""Step order: which tasks a task reads from, and the order the steps are built in (producers first)."""

from __future__ import annotations

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.ir import (
    Collected,
    ImportedArtifact,
    PipelinePlan,
    TaskOutputArtifact,
    TaskOutputParam,
    TaskPlan,
)


def data_producers(task: TaskPlan) -> set[str]:
    """Tasks whose outputs `task` reads (SageMaker infers these dependencies from the references)."""
    found: set[str] = set()
    for source in [*task.parameters.values(), *task.artifacts.values()]:
        if isinstance(source, TaskOutputParam | TaskOutputArtifact):
            found.add(source.task)
        elif isinstance(source, Collected):
            found |= {item.task for item in source.items}
        elif isinstance(source, ImportedArtifact) and isinstance(source.uri, TaskOutputParam):
            found.add(source.uri.task)  # an importer of a URI that task computed
    return found


def ordering_dependencies(plan: PipelinePlan, task: TaskPlan) -> list[str] | None:
    """Only ordering-only dependencies (`.after()`); data dependencies SageMaker infers.

    A dependency on an inlined group (sub-pipeline, unrolled loop, branch group) is one on its
    steps; one on an importer (no step) disappears."""
    steps = {step for dep in task.depends_on for step in plan.step_dependencies(dep)}
    rest = sorted(steps - data_producers(task))
    return rest or None


def topological(plan: PipelinePlan) -> list[TaskPlan]:
    """Every task after the tasks it depends on or reads from; ties by key, so the order is stable."""
    order: list[TaskPlan] = []
    seen: set[str] = set()

    def visit(key: str, stack: tuple[str, ...]) -> None:
        if key in seen:
            return
        if key in stack:
            raise UnsupportedFeatureError(f"task '{key}': dependency cycle {' -> '.join((*stack, key))}")
        task = plan.tasks[key]
        upstream = set(task.depends_on) | data_producers(task)
        for dep in sorted(upstream):
            for member in plan.tasks_in(dep):
                visit(member, (*stack, key))
        seen.add(key)
        order.append(task)

    for key in sorted(plan.tasks):
        visit(key, ())
    return order


def condition_depth(plan: PipelinePlan, key: str) -> int:
    """How many condition groups enclose condition group `key`."""
    depth = 0
    group = plan.conditions[key].group
    while group is not None:
        depth += 1
        group = plan.conditions[group].group
    return depth
