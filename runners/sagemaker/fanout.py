"""A `dsl.ParallelFor` SageMaker cannot unroll -> one step whose job runs the loop body once per item.

SageMaker Pipelines has no step that fans out at run time: a definition names every step before
it runs. A loop over a list known only at run time (a pipeline parameter, a task's output) is
therefore compiled into one ProcessingStep whose shim (`shim_fanout.py`) runs the body's tasks for
each item, in parallel processes. A literal loop whose artifacts are gathered with `dsl.Collected`
is compiled the same way, so every iteration's artifact lands under one S3 prefix (`<i>/` per item).

The body is the loop's own DAG, kept as KFP scopes it: container tasks, `dsl.If/Elif/Else`
(their CEL text, evaluated by the job per item), nested loops (over a literal list, the item, or
an outer value) and sub-pipelines, at any depth. An importer, an exit handler or a loop over
artifacts inside it is refused. Here the plan is built; `compiler/fanout.py` writes what the shim reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel
from kubesage.runners.sagemaker.ir import (
    ITEMS_PARAMETER,
    BodyGroup,
    BodyTask,
    Constant,
    FanOutPlan,
    FinalStatus,
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
    "a runtime loop runs inside one SageMaker job, which runs container tasks, dsl.If/Elif/Else, nested loops and "
    "sub-pipelines: move this into a component, or loop over a literal list"
)


def collected_key(body_task: str, output: str) -> str:
    """The fan-out step's output parameter gathering `output` of `body_task`: a JsonGet path segment."""
    return re.sub(r"\W", "_", f"{body_task}__{output}")


def collected_folder(body_task: str, output: str) -> str:
    """The fan-out step's output folder gathering artifact `output` of `body_task` (`<i>/<output>`)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", f"{body_task}-{output}").strip("-")


def input_channel(name: str) -> str:
    """The fan-out step's input channel for the loop input artifact `name` (an outer task's output)."""
    return "in-" + re.sub(r"[^A-Za-z0-9]+", "-", name.removeprefix("pipelinechannel--")).strip("-")


def parallelism(task: Mapping[str, Any]) -> int | None:
    limit = task.get("iteratorPolicy", {}).get("parallelismLimit")
    return int(limit) if limit else None


def collects_nested_loop(walker: Walker, component: Mapping[str, Any]) -> bool:
    """Whether a loop's DAG gathers an output of a loop nested in it (dsl.Collected of nested loops)."""
    tasks = component["dag"].get("tasks", {})
    for selector in component["dag"].get("outputs", {}).get("parameters", {}).values():
        producer = tasks.get(selector.get("valueFromParameter", {}).get("producerSubtask", ""))
        if producer is not None and walker.group_kind(producer) == "loop":
            return True
    return False


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
        inner = self._group(self.key, "loop", component, {}, {})
        if not inner.members:
            raise unsupported(self.key, "a dsl.ParallelFor with an empty body")
        body = replace(
            inner,
            inputs=self._outer_parameters(inner, scope, component),
            artifacts=self._outer_artifacts(inner, scope, component),
            item_input=self.item_input,
        )
        collected = {collected_key(*source[0]): name for name, source in body.outputs.items() if len(source) == 1}
        folders = {collected_folder(*source[0]): name for name, source in body.output_artifacts.items()}
        outputs = component.get("outputDefinitions", {})
        plan = FanOutPlan(
            loop=self.key,
            parallelism=parallelism(self.task),
            body=body,
            collected=collected,
            collected_artifacts=folders,
            artifact_files={folder: _leaf_output(body, name) for folder, name in folders.items()},
            runtime=self.runtime,
        )
        component_view = {
            "inputDefinitions": {"parameters": self.declared, "artifacts": self.channel_types},
            "outputDefinitions": {
                "parameters": {k: {"parameterType": "LIST"} for k in collected},
                "artifacts": {
                    folder: {"artifactType": outputs.get("artifacts", {}).get(name, {}).get("artifactType", {})}
                    for folder, name in folders.items()
                },
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

    # ---- the loop's own inputs: the step's parameters and channels --------------------------------

    def _outer_parameters(
        self, body: BodyGroup, scope: Mapping[str, Source], component: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        bound: dict[str, dict[str, Any]] = {}
        for name in sorted(_read_inputs(body, "inputs")):
            if name == self.item_input:
                bound[name] = {"item": None}
                continue
            source = scope.get(name)
            if source is None or isinstance(source, TaskOutputArtifact | ImportedArtifact | FinalStatus):
                raise unsupported(self.key, f"loop input '{name}' cannot be passed to the loop body as a parameter")
            if isinstance(source, Constant):
                bound[name] = {"constant": source.value}
                continue
            param = name.removeprefix("pipelinechannel--")
            self.parameters[param] = source
            self.declared[param] = {"parameterType": declared.get(name, {}).get("parameterType", "STRING")}
            bound[name] = {"param": param}
        return bound

    def _outer_artifacts(
        self, body: BodyGroup, scope: Mapping[str, Source], component: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        declared = component.get("inputDefinitions", {}).get("artifacts", {})
        bound: dict[str, dict[str, Any]] = {}
        for name in sorted(_read_inputs(body, "artifacts")):
            source = scope.get(name)
            if not isinstance(source, TaskOutputArtifact | ImportedArtifact):
                raise unsupported(self.key, f"loop input artifact '{name}' is not an artifact of the enclosing DAG")
            channel = input_channel(name)
            self.channels[channel] = source
            self.channel_types[channel] = declared.get(name, {})
            bound[name] = {"channel": channel}
        return bound

    # ---- the body DAG, at any depth -------------------------------------------------------------

    def _group(
        self,
        local: str,
        kind: Literal["condition", "loop", "dag"],
        component: Mapping[str, Any],
        inputs: dict[str, dict[str, Any]],
        artifacts: dict[str, dict[str, Any]],
    ) -> BodyGroup:
        dag = component["dag"]
        tasks = dag.get("tasks", {})
        names = set(tasks)
        members = tuple(self._member(name, spec, names) for name, spec in sorted(tasks.items()))
        outputs = dag.get("outputs", {})
        return BodyGroup(
            local=local,
            kind=kind,
            inputs=inputs,
            artifacts=artifacts,
            members=_in_run_order(self.key, members),
            outputs={
                name: self._selectors(local, name, selector, names)
                for name, selector in sorted(outputs.get("parameters", {}).items())
            },
            output_artifacts={
                name: tuple(
                    (_member_name(self.key, s.get("producerSubtask", ""), names), s.get("outputArtifactKey", ""))
                    for s in selector.get("artifactSelectors", [])
                )
                for name, selector in sorted(outputs.get("artifacts", {}).items())
            },
        )

    def _selectors(
        self, group: str, name: str, selector: Mapping[str, Any], names: set[str]
    ) -> tuple[tuple[str, str], ...]:
        if "valueFromParameter" in selector:
            found = [selector["valueFromParameter"]]
        else:
            found = list(selector.get("valueFromOneof", {}).get("parameterSelectors", []))
        if not found:
            raise unsupported(
                f"{self.key}-{group}", f"output '{name}' selects {sorted(selector)} inside a runtime loop"
            )
        return tuple(
            (_member_name(self.key, s.get("producerSubtask", ""), names), s.get("outputParameterKey", ""))
            for s in found
        )

    def _member(self, local: str, spec: Mapping[str, Any], names: set[str]) -> BodyTask | BodyGroup:
        component = self.walker.component(local, spec)
        reader = f"{self.key}-{local}"
        inputs = spec.get("inputs", {})
        parameters = {
            name: self._parameter(reader, name, pspec, names)
            for name, pspec in sorted(inputs.get("parameters", {}).items())
        }
        artifacts = {
            name: self._artifact(reader, name, aspec, names)
            for name, aspec in sorted(inputs.get("artifacts", {}).items())
        }
        after = tuple(sorted(d for d in spec.get("dependentTasks", []) if d in names))
        if "dag" in component:
            return replace(self._body_group(reader, local, spec, component, parameters, artifacts), after=after)
        executor = self.walker.executor(local, component)
        if "container" not in executor:
            raise unsupported(
                self.key, f"a runtime dsl.ParallelFor whose body holds '{local}' ({sorted(executor)})", _BODY_HINT
            )
        for where in ("inputDefinitions", "outputDefinitions"):
            for name, art in component.get(where, {}).get("artifacts", {}).items():
                if art.get("isArtifactList"):
                    raise unsupported(
                        self.key,
                        f"an artifact list '{name}' of '{local}' inside a runtime loop body",
                        "collect the loop's artifacts outside it (dsl.Collected after the loop is translated), "
                        "or pass this task one artifact per item",
                    )
        return BodyTask(
            local=local,
            display_name=spec.get("taskInfo", {}).get("name", local),
            component={k: component[k] for k in ("inputDefinitions", "outputDefinitions") if k in component},
            container=dict(executor["container"]),
            inputs=parameters,
            artifacts=artifacts,
            after=after,
            executor=str(component.get("executorLabel", "")),
        )

    def _body_group(
        self,
        reader: str,
        local: str,
        spec: Mapping[str, Any],
        component: Mapping[str, Any],
        parameters: dict[str, dict[str, Any]],
        artifacts: dict[str, dict[str, Any]],
    ) -> BodyGroup:
        kind = self.walker.group_kind(spec)
        if kind in ("condition", "branches", "sub-pipeline"):
            if kind == "sub-pipeline":  # its optional inputs the caller left out, at their defaults
                for name, default in _omitted_defaults(component, parameters).items():
                    parameters[name] = {"constant": default}
            group = self._group(local, "condition" if kind == "condition" else "dag", component, parameters, artifacts)
            if kind != "condition":
                return group
            text = str(spec["triggerPolicy"]["condition"])
            cel.check_syntax(text, task=reader)
            return replace(group, condition=text)
        if kind == "loop" and "artifactIterator" in spec:
            raise unsupported(
                reader,
                "a dsl.ParallelFor over a list of artifacts inside a runtime loop",
                "loop over a list of parameters (URIs) instead",
            )
        if kind == "loop":
            iterator = spec["parameterIterator"]
            items_spec = iterator.get("items", {})
            if "raw" in items_spec:
                items: dict[str, Any] = {"raw": _json_items(reader, items_spec["raw"])}
            else:
                items = {"input": str(items_spec.get("inputParameter", ""))}
            group = self._group(local, "loop", component, parameters, artifacts)
            return replace(group, items=items, item_input=str(iterator.get("itemInput", "")))
        raise unsupported(self.key, f"a runtime dsl.ParallelFor whose body holds a {kind} ('{local}')", _BODY_HINT)

    def _parameter(self, reader: str, name: str, spec: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
        if "runtimeValue" in spec:
            return {"constant": spec["runtimeValue"].get("constant")}
        if "taskOutputParameter" in spec:
            ref = spec["taskOutputParameter"]
            return {
                "task": _member_name(reader, ref.get("producerTask", ""), names),
                "output": ref.get("outputParameterKey", ""),
            }
        if "componentInputParameter" not in spec:
            raise unsupported(reader, f"input '{name}' uses {sorted(spec)} inside a runtime loop")
        selector = spec.get("parameterExpressionSelector")
        field = None
        if selector:
            match = FIELD_SELECTOR.match(selector)
            if match is None:
                raise unsupported(reader, f"input '{name}' selects {selector!r} from a loop item or input")
            field = match.group(1)
        return {"input": str(spec["componentInputParameter"]), "field": field}

    def _artifact(self, reader: str, name: str, spec: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
        if "taskOutputArtifact" in spec:
            ref = spec["taskOutputArtifact"]
            return {
                "task": _member_name(reader, ref.get("producerTask", ""), names),
                "output": ref.get("outputArtifactKey", ""),
            }
        if "componentInputArtifact" in spec:
            return {"input": str(spec["componentInputArtifact"])}
        raise unsupported(reader, f"input artifact '{name}' uses {sorted(spec)} inside a runtime loop")


def _read_inputs(group: BodyGroup, kind: str) -> set[str]:
    """The names of `group`'s own inputs its direct members (and a loop's items) read."""
    found = {group.items["input"]} if kind == "inputs" and group.items and "input" in group.items else set()
    for member in group.members:
        refs = member.inputs if kind == "inputs" else member.artifacts
        found |= {ref["input"] for ref in refs.values() if "input" in ref}
    return found


def _leaf_output(group: BodyGroup, name: str) -> str:
    """The output name of the container task an artifact output of `group` comes from, at any depth."""
    member_name, key = group.output_artifacts[name][0]
    member = next(m for m in group.members if m.local == member_name)
    return _leaf_output(member, key) if isinstance(member, BodyGroup) else key


def _json_items(reader: str, raw: Any) -> list[Any]:
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise UnsupportedFeatureError(f"task '{reader}': loop items {raw!r} are not a JSON list")
    return items


def _omitted_defaults(component: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A sub-pipeline's optional inputs its caller left out, at their defaults (None without one), as KFP does."""
    defaults: dict[str, Any] = {}
    for name, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
        if name in given:
            continue
        if "defaultValue" in spec:
            defaults[name] = spec["defaultValue"]
        elif spec.get("isOptional"):
            defaults[name] = None
    return defaults


def _in_run_order(loop: str, members: tuple[BodyTask | BodyGroup, ...]) -> tuple[BodyTask | BodyGroup, ...]:
    """Members after the siblings they read or follow, ties by name."""
    by_name = {m.local: m for m in members}
    done: list[BodyTask | BodyGroup] = []

    def visit(member: BodyTask | BodyGroup, stack: tuple[str, ...]) -> None:
        if member in done:
            return
        if member.local in stack:
            raise UnsupportedFeatureError(f"task '{loop}': dependency cycle in the loop body at '{member.local}'")
        upstream = set(member.after) | {
            ref["task"] for ref in [*member.inputs.values(), *member.artifacts.values()] if "task" in ref
        }
        for name in sorted(upstream):
            visit(by_name[name], (*stack, member.local))
        done.append(member)

    for member in members:
        visit(member, ())
    return tuple(done)


def _member_name(reader: str, producer: str, names: set[str]) -> str:
    """The sibling a reference names; one its DAG does not define is malformed IR."""
    if producer not in names:
        raise UnsupportedFeatureError(
            f"task '{reader}': reads task '{producer}', which its loop body does not define "
            "(malformed pipeline IR); recompile the pipeline with kfp.compiler"
        )
    return producer
