"""A `dsl.ParallelFor` SageMaker cannot unroll -> one step whose job runs the loop body once per item.

SageMaker Pipelines has no step that fans out at run time: a definition names every step before
it runs. A loop over a list known only at run time (a pipeline parameter, a task's output) is
therefore compiled into one ProcessingStep whose shim (`shim_fanout.py`) runs the body's tasks for
each item, in parallel processes. A literal loop whose artifacts are gathered with `dsl.Collected`
is compiled the same way, so every iteration's artifact lands under one S3 prefix (`<i>/` per item).

The body must be tasks only (one task or a chain): a condition, nested loop, sub-pipeline or
importer inside it would need steps of its own, which a job cannot start. Here the plan is built;
`compiler/fanout.py` writes what the shim reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.ir import (
    ITEMS_PARAMETER,
    BodyTask,
    Constant,
    FanOutPlan,
    ImportedArtifact,
    ParamSource,
    Source,
    TaskOutputArtifact,
    TaskPlan,
    unsupported,
)

if TYPE_CHECKING:
    from kubesage.runners.sagemaker.inline import Frame, Walker

# parseJson(string_value)["field"]: how KFP reads a field of a loop item (`item.field`)
FIELD_SELECTOR = re.compile(r'^parseJson\(string_value\)\["([^"\\]+)"\]$')
_BODY_HINT = (
    "a runtime loop runs inside one SageMaker job, which runs tasks only: keep the loop body to tasks "
    "(move the logic into a component), or loop over a literal list"
)


def collected_key(body_task: str, output: str) -> str:
    """The fan-out step's output parameter gathering `output` of `body_task`: a JsonGet path segment."""
    return re.sub(r"\W", "_", f"{body_task}__{output}")


def collected_folder(body_task: str, output: str) -> str:
    """The fan-out step's output folder gathering artifact `output` of `body_task` (`<i>/<output>`)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", f"{body_task}-{output}").strip("-")


def parallelism(task: Mapping[str, Any]) -> int | None:
    limit = task.get("iteratorPolicy", {}).get("parallelismLimit")
    return int(limit) if limit else None


class FanOutBuilder:
    """Builds the fan-out TaskPlan of one loop group; outer values become the step's inputs."""

    def __init__(self, walker: Walker, frame: Frame, local: str, task: Mapping[str, Any], runtime: bool) -> None:
        self.walker = walker
        self.frame = frame
        self.task = task
        self.key = frame.name(local)
        self.runtime = runtime
        self.item_input = str(task.get("parameterIterator", {}).get("itemInput", ""))
        self.parameters: dict[str, ParamSource] = {}
        self.declared: dict[str, Any] = {ITEMS_PARAMETER: {"parameterType": "LIST"}}
        self.channels: dict[str, TaskOutputArtifact | ImportedArtifact] = {}
        self.channel_types: dict[str, Any] = {}

    def build(self, items: ParamSource, scope: Mapping[str, Source], component: Mapping[str, Any]) -> TaskPlan:
        self.parameters[ITEMS_PARAMETER] = items
        dag = component["dag"]
        names = set(dag.get("tasks", {}))
        body = tuple(self._body_task(local, spec, scope, names) for local, spec in sorted(dag.get("tasks", {}).items()))
        if not body:
            raise unsupported(self.key, "a dsl.ParallelFor with an empty body")
        collected = {
            collected_key(b.local, out): (b.local, out)
            for b in body
            for out in b.component.get("outputDefinitions", {}).get("parameters", {})
        }
        folders: dict[str, tuple[str, str]] = {}
        folder_types: dict[str, Any] = {}
        for b in body:
            for out, art in b.component.get("outputDefinitions", {}).get("artifacts", {}).items():
                folders[collected_folder(b.local, out)] = (b.local, out)
                folder_types[collected_folder(b.local, out)] = {"artifactType": art["artifactType"]}
        plan = FanOutPlan(
            loop=self.key,
            parallelism=parallelism(self.task),
            body=_in_run_order(self.key, body),
            collected=collected,
            collected_artifacts=folders,
            runtime=self.runtime,
        )
        component_view = {
            "inputDefinitions": {"parameters": self.declared, "artifacts": self.channel_types},
            "outputDefinitions": {
                "parameters": {k: {"parameterType": "LIST"} for k in collected},
                "artifacts": folder_types,
            },
        }
        return TaskPlan(
            key=self.key,
            display_name=self.task.get("taskInfo", {}).get("name", self.key),
            component_name=str(self.task.get("componentRef", {}).get("name", "")),
            component=component_view,
            container={},
            parameters=self.parameters,
            artifacts=dict(self.channels),
            kind="processing",
            model_output=None,
            depends_on=sorted(self.frame.name(d) for d in self.task.get("dependentTasks", [])),
            group=self.frame.condition,
            caching=False,  # a re-run of the loop must re-run its items: one cache entry would hide them
            retry=None,
            origin=self.frame.origin,
            fan_out=plan,
        )

    def _body_task(self, local: str, spec: Mapping[str, Any], scope: Mapping[str, Source], names: set[str]) -> BodyTask:
        component = self.walker.component(local, spec)
        if "dag" in component:
            kind = self.walker.group_kind(spec)
            raise unsupported(self.key, f"a runtime dsl.ParallelFor whose body holds a {kind} ('{local}')", _BODY_HINT)
        executor = self.walker.executor(local, component)
        if "container" not in executor:
            raise unsupported(
                self.key, f"a runtime dsl.ParallelFor whose body holds '{local}' ({sorted(executor)})", _BODY_HINT
            )
        for where in ("inputDefinitions", "outputDefinitions"):
            for name, art in component.get(where, {}).get("artifacts", {}).items():
                if art.get("isArtifactList"):
                    raise unsupported(self.key, f"an artifact list '{name}' of '{local}' inside a runtime loop body")
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        inputs = spec.get("inputs", {})
        return BodyTask(
            local=local,
            display_name=spec.get("taskInfo", {}).get("name", local),
            component={k: component[k] for k in ("inputDefinitions", "outputDefinitions") if k in component},
            container=dict(executor["container"]),
            inputs={
                name: self._parameter(local, name, pspec, scope, names, declared.get(name, {}))
                for name, pspec in sorted(inputs.get("parameters", {}).items())
            },
            artifacts={
                name: self._artifact(local, name, aspec, scope, names, component)
                for name, aspec in sorted(inputs.get("artifacts", {}).items())
            },
            after=tuple(sorted(d for d in spec.get("dependentTasks", []) if d in names)),
            executor=str(component.get("executorLabel", "")),
        )

    def _parameter(
        self,
        local: str,
        name: str,
        spec: Mapping[str, Any],
        scope: Mapping[str, Source],
        names: set[str],
        declared: Mapping[str, Any],
    ) -> dict[str, Any]:
        reader = f"{self.key}-{local}"
        if "runtimeValue" in spec:
            return {"constant": spec["runtimeValue"].get("constant")}
        if "taskOutputParameter" in spec:
            ref = spec["taskOutputParameter"]
            return {"task": _body_producer(reader, ref, names), "output": ref.get("outputParameterKey", "")}
        if "componentInputParameter" not in spec:
            raise unsupported(reader, f"input '{name}' uses {sorted(spec)} inside a runtime loop")
        outer = spec["componentInputParameter"]
        selector = spec.get("parameterExpressionSelector")
        if outer == self.item_input:
            if not selector:
                return {"item": None}
            match = FIELD_SELECTOR.match(selector)
            if match is None:
                raise unsupported(reader, f"input '{name}' selects {selector!r} from the loop item")
            return {"item": match.group(1)}
        source = scope.get(outer)
        if source is None or isinstance(source, TaskOutputArtifact | ImportedArtifact) or selector:
            raise unsupported(reader, f"input '{name}' reads '{outer}', which the loop cannot pass as a parameter")
        if isinstance(source, Constant):
            return {"constant": source.value}
        param = f"{local}.{name}"
        self.parameters[param] = source
        self.declared[param] = {"parameterType": declared.get("parameterType", "STRING")}
        return {"param": param}

    def _artifact(
        self,
        local: str,
        name: str,
        spec: Mapping[str, Any],
        scope: Mapping[str, Source],
        names: set[str],
        component: Mapping[str, Any],
    ) -> dict[str, Any]:
        reader = f"{self.key}-{local}"
        if "taskOutputArtifact" in spec:
            ref = spec["taskOutputArtifact"]
            return {"task": _body_producer(reader, ref, names), "output": ref.get("outputArtifactKey", "")}
        source = scope.get(str(spec.get("componentInputArtifact", "")))
        if not isinstance(source, TaskOutputArtifact | ImportedArtifact):
            raise unsupported(reader, f"input artifact '{name}' uses {sorted(spec)} inside a runtime loop")
        channel = collected_folder(local, name)
        self.channels[channel] = source
        self.channel_types[channel] = component.get("inputDefinitions", {}).get("artifacts", {}).get(name, {})
        return {"channel": channel}


def _in_run_order(loop: str, body: tuple[BodyTask, ...]) -> tuple[BodyTask, ...]:
    """Body tasks after the body tasks they read or follow (the chain's order), ties by name."""
    by_name = {b.local: b for b in body}
    done: list[BodyTask] = []

    def visit(task: BodyTask, stack: tuple[str, ...]) -> None:
        if task in done:
            return
        if task.local in stack:
            raise UnsupportedFeatureError(f"task '{loop}': dependency cycle in the loop body at '{task.local}'")
        upstream = set(task.after) | {
            ref["task"] for ref in [*task.inputs.values(), *task.artifacts.values()] if "task" in ref
        }
        for name in sorted(upstream):
            visit(by_name[name], (*stack, task.local))
        done.append(task)

    for task in body:
        visit(task, ())
    return tuple(done)


def _body_producer(reader: str, ref: Mapping[str, Any], names: set[str]) -> str:
    """The loop-body task an input of `reader` reads; one the body does not define is malformed IR."""
    producer = str(ref.get("producerTask", ""))
    if producer not in names:
        raise UnsupportedFeatureError(
            f"task '{reader}': reads task '{producer}', which its loop body does not define "
            "(malformed pipeline IR); recompile the pipeline with kfp.compiler"
        )
    return producer
