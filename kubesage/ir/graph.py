"""The task graph of a compiled PipelineSpec: its DAGs, their tasks, and the executors tasks run.

KFP nests DAGs: the root's, and one per sub-pipeline, `dsl.If`/`Elif`/`Else` branch group and
`dsl.ParallelFor` (a component with a `dag` instead of an `executorLabel`). The schema check and the
runners that edit or follow the IR walk them through these functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def dags(spec: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner, dag) for the root ("root") and every component that is a DAG, in IR order."""
    yield "root", spec["root"]["dag"]
    for name, component in spec.get("components", {}).items():
        if "dag" in component:
            yield name, component["dag"]


def executors(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Executor label -> its container spec (importers and resolvers, which have none, left out)."""
    found = spec.get("deploymentSpec", {}).get("executors", {})
    return {label: executor["container"] for label, executor in found.items() if "container" in executor}


def executor_tasks(spec: Mapping[str, Any]) -> list[str]:
    """The names of the tasks that run an executor (not the DAGs around them), in IR order."""
    components = spec.get("components", {})
    names = []
    for _, dag in dags(spec):
        for name, task in dag.get("tasks", {}).items():
            component = components.get(task.get("componentRef", {}).get("name", ""), {})
            if "executorLabel" in component:
                names.append(name)
    return names
