"""Flatten KFP's nested DAGs into the one flat DAG SageMaker Pipelines runs.

KFP names a task uniquely only inside its own pipeline, and reads a sibling's output by its local
name (`producerTask`) or a group's output through the group's `dag.outputs` selectors. Each DAG is
walked as a `Frame`: its spec, the values of its inputs (`scope`) and the prefix that turns its
local names into step names. A sub-pipeline's tasks get the prefix `<sub-pipeline task>-`, the
tasks of loop iteration i the prefix `<loop task>-<i>-`; conditions and `dsl.If/Elif/Else` branch
groups keep their parent's prefix (KFP numbers them uniquely per pipeline). Values are rewired
while walking: a read of a sub-pipeline's output becomes a read of the inner task that produced it,
a read of a loop's `dsl.Collected` output becomes the list of each iteration's output.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel
from kubesage.runners.sagemaker.fanout import FanOutBuilder, collected_folder, collected_key, collects_nested_loop
from kubesage.runners.sagemaker.ir import (
    MODEL_SCHEMA,
    ArtifactSource,
    Collected,
    ConditionPlan,
    Constant,
    FinalStatus,
    ImportedArtifact,
    ParamSource,
    PipelineParam,
    Source,
    TaskOutputArtifact,
    TaskOutputParam,
    TaskPlan,
    unsupported,
)

MAX_STEP_NAME = 64
# what a dsl.importer may name: an S3 object (an input channel) or a URL the step fetches
IMPORT_SCHEMES = ("s3://", "https://")
# parseJson(string_value)["field"]: how KFP reads a field of a loop item (`item.field`)
_FIELD_SELECTOR = re.compile(r'^parseJson\(string_value\)\["([^"\\]+)"\]$')
# kfp-kubernetes CreatePVC/DeletePVC compile to tasks on these placeholder images
_KUBERNETES_STUB_IMAGES = ("argostub/createpvc", "argostub/deletepvc")


def step_name(name: str) -> str:
    """SageMaker step names are at most 64 characters: longer inlined names keep a hash of the rest."""
    if len(name) <= MAX_STEP_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_STEP_NAME - 9]}-{digest}"


@dataclass(frozen=True)
class Frame:
    """One DAG being inlined."""

    dag: Mapping[str, Any]
    scope: Mapping[str, Source]
    prefix: str
    condition: str | None  # the nearest enclosing dsl.If (a ConditionStep)
    owner: str | None  # the group whose direct members are listed in `Walker.groups`
    origin: str  # for the report: "" at the top, "sub-pipeline 'x'", "loop 'for-loop-2' item 1"
    exit_handler: str | None = None  # the dsl.ExitHandler whose body this is (its tasks record failures)
    # a pipeline as the exit task of these dsl.ExitHandlers: every task and dsl.If in it waits for their tasks
    after: tuple[str, ...] = ()

    def name(self, local: str) -> str:
        return step_name(self.prefix + local)

    def task(self, local: str, reader: str) -> Mapping[str, Any]:
        tasks = self.dag.get("tasks", {})
        if local not in tasks:
            raise UnsupportedFeatureError(
                f"task '{reader}': reads task '{local}', which its DAG does not define (malformed pipeline IR); "
                "recompile the pipeline with kfp.compiler"
            )
        found: Mapping[str, Any] = tasks[local]
        return found


class Walker:
    """Collects tasks, conditions, groups and importers while inlining every DAG."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.components: Mapping[str, Any] = spec.get("components", {})
        self.executors: Mapping[str, Any] = spec["deploymentSpec"]["executors"]
        self.tasks: dict[str, TaskPlan] = {}
        self.conditions: dict[str, ConditionPlan] = {}
        self.groups: dict[str, list[str]] = {}
        self.imports: dict[str, ImportedArtifact] = {}
        self.notes: list[str] = []
        self.fan_out_folders: set[str] = set()  # fan-out steps whose collected artifacts a task reads
        # dsl.OneOf: branch group -> the branch (condition key) whose output is read while copying a reader
        self.branch_choice: dict[str, str] = {}
        self.one_of_readers: list[Callable[[], None]] = []
        self.one_of_copies: dict[str, list[str]] = {}  # reader -> its copies, one per branch
        self.exit_handlers: dict[str, str] = {}  # dsl.ExitHandler group -> its exit task

    # ---- walking -------------------------------------------------------------------------------

    def walk_root(self, scope: Mapping[str, Source]) -> None:
        try:
            self.walk(Frame(self.spec["root"]["dag"], scope, "", None, None, ""))
            # readers of a dsl.OneOf are copied into the branches once every ConditionStep is known
            for copy in self.one_of_readers:
                copy()
        except OneOfBranches as branches:
            raise _one_of(branches.reader, branches.group) from None

    def walk(self, frame: Frame) -> None:
        for local, task in sorted(frame.dag.get("tasks", {}).items()):
            self._check_task(frame, local, task)
            component = self.component(local, task)
            if "dag" in component:
                self._walk_group(frame, local, task, component)
            elif "importer" in self.executor(local, component):
                self.imports[frame.name(local)] = self.importer(frame, local, task, component)
                self._add_member(frame, frame.name(local), step=False)
            else:
                self._add_task(frame, local, task, component)

    def component(self, local: str, task: Mapping[str, Any]) -> Mapping[str, Any]:
        name = task.get("componentRef", {}).get("name")
        if name not in self.components:
            raise UnsupportedFeatureError(
                f"task '{local}': componentRef names component {name!r}, which the pipeline IR does not define; "
                "recompile the pipeline with kfp.compiler"
            )
        component: Mapping[str, Any] = self.components[name]
        return component

    def executor(self, local: str, component: Mapping[str, Any]) -> Mapping[str, Any]:
        label = str(component.get("executorLabel"))
        if label not in self.executors:
            raise UnsupportedFeatureError(
                f"task '{local}': executor {label!r} is missing from deploymentSpec (malformed pipeline IR); "
                "recompile the pipeline with kfp.compiler"
            )
        executor: Mapping[str, Any] = self.executors[label]
        return executor

    def _check_task(self, frame: Frame, local: str, task: Mapping[str, Any]) -> None:
        strategy = task.get("triggerPolicy", {}).get("strategy")
        if not strategy or strategy == "ALL_UPSTREAM_TASKS_SUCCEEDED" or self.exit_handler_of(frame, task):
            return
        name = task.get("componentRef", {}).get("name")
        if strategy == "ALL_UPSTREAM_TASKS_COMPLETED" and "dag" not in self.components.get(name, {}):
            return  # ignore_upstream_failure on a task: translated, or refused, by ir._ignore_upstream_failure
        raise unsupported(
            frame.name(local),
            f"trigger strategy {strategy} on a group (ignore_upstream_failure on a sub-pipeline)"
            if strategy == "ALL_UPSTREAM_TASKS_COMPLETED"
            else f"trigger strategy {strategy}",
            "SageMaker runs a step only when every step it depends on succeeded: call ignore_upstream_failure on "
            "the tasks inside the sub-pipeline, or make it the exit task of a dsl.ExitHandler around its upstream "
            "tasks",
        )

    @staticmethod
    def ignores_upstream_failure(task: Mapping[str, Any]) -> bool:
        return bool(task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED")

    def exit_handler_of(self, frame: Frame, task: Mapping[str, Any]) -> str | None:
        """The dsl.ExitHandler whose exit task `task` is: it runs after the handler even on failure."""
        if task.get("triggerPolicy", {}).get("strategy") != "ALL_UPSTREAM_TASKS_COMPLETED":
            return None
        dependencies = task.get("dependentTasks", [])
        tasks = frame.dag.get("tasks", {})
        handlers = [d for d in dependencies if d in tasks and self.group_kind(tasks[d]) == "exit-handler"]
        return frame.name(handlers[0]) if len(handlers) == 1 and len(dependencies) == 1 else None

    def _add_member(self, frame: Frame, key: str, *, step: bool) -> None:
        if frame.owner is not None and frame.owner in self.groups:
            self.groups[frame.owner].append(key)
        if step and frame.condition is not None:
            self.conditions[frame.condition].members.append(key)

    @staticmethod
    def group_kind(task: Mapping[str, Any]) -> str:
        ref = task.get("componentRef", {}).get("name", "")
        if ref.startswith("comp-exit-handler"):
            return "exit-handler"
        if "parameterIterator" in task or "artifactIterator" in task:
            return "loop"
        if task.get("triggerPolicy", {}).get("condition"):
            return "condition"
        if ref.startswith("comp-condition-branches"):
            return "branches"
        if ref.startswith("comp-for-loop") or ref.startswith("comp-condition-"):
            return "malformed"
        return "sub-pipeline"

    def _walk_group(self, frame: Frame, local: str, task: Mapping[str, Any], component: Mapping[str, Any]) -> None:
        key = frame.name(local)
        kind = self.group_kind(task)
        if kind == "exit-handler" and frame.condition is not None:
            raise unsupported(
                key, "a dsl.ExitHandler inside a dsl.If", "put the dsl.ExitHandler at the top of the pipeline"
            )
        if kind == "condition" and frame.exit_handler is not None:
            raise unsupported(
                key,
                f"a dsl.If inside dsl.ExitHandler '{frame.exit_handler}'",
                "a failed task's stand-in outputs could pick the wrong branch; decide inside a task, or move the "
                "dsl.If out of the handler",
            )
        handler = self.exit_handler_of(frame, task)
        if handler is not None:
            if kind != "sub-pipeline":
                raise unsupported(key, f"a {kind} as the exit task of dsl.ExitHandler '{handler}'")
            # inlined below; every task and dsl.If in it waits for the handler's tasks (Frame.after)
            self.exit_handlers[handler] = key
        if kind == "loop":
            fan_out = self.fan_out_items(frame, local, task, component)
            if fan_out is not None:
                self._add_fan_out(frame, local, task, component, fan_out)
                return
        children = self.child_frames(frame, local, task, component)
        if kind == "condition":
            condition = task["triggerPolicy"]["condition"]
            inner = children[0].scope
            expression = cel.parse_condition(condition, task=key)
            self.conditions[key] = ConditionPlan(
                key=key,
                display_name=task.get("taskInfo", {}).get("name", local),
                text=condition,
                expression=expression,
                refs={name: self._condition_ref(key, name, inner) for name in _refs(expression)},
                depends_on=sorted({*(frame.name(d) for d in task.get("dependentTasks", [])), *frame.after}),
                group=frame.condition,
            )
            self._add_member(frame, key, step=True)
        else:
            self.groups[key] = []
            self._add_member(frame, key, step=False)
            if kind == "exit-handler":  # its exit task may have been walked first (tasks go by name)
                self.exit_handlers.setdefault(key, "")
            if kind == "sub-pipeline":
                self.notes.append(f"sub-pipeline '{key}' ({task['componentRef']['name']}) -> inlined, prefix '{key}-'")
            elif kind == "loop":
                self.notes.append(
                    f"dsl.ParallelFor '{key}' over {len(children)} items fixed at compile time -> unrolled into "
                    f"parallel steps {', '.join(repr(c.prefix + '*') for c in children)}" + self._parallelism_note(task)
                )
        for child in children:
            self.walk(child)

    def fan_out_items(
        self, frame: Frame, local: str, task: Mapping[str, Any], component: Mapping[str, Any]
    ) -> ParamSource | None:
        """The items of a loop that runs as one fan-out step, or None for a loop unrolled at compile time.

        A loop fans out when its list is known only at run time, when its artifacts are gathered
        with dsl.Collected (a literal loop then still gets one S3 prefix for them all), or when it
        gathers the outputs of a loop nested in it (a list of lists, which unrolled steps cannot build)."""
        if "artifactIterator" in task:
            return None
        items_spec = task["parameterIterator"].get("items", {})
        if "raw" in items_spec:
            source: ParamSource = Constant(_json_list(frame.name(local), items_spec["raw"]))
        else:
            pspec = task.get("inputs", {}).get("parameters", {}).get(items_spec.get("inputParameter", ""))
            if pspec is None:
                return None  # reported as malformed by _loop_items
            source = self.parameter(frame, frame.name(local), "items", pspec)
        if not isinstance(source, Constant):
            return source
        if component["dag"].get("outputs", {}).get("artifacts") or collects_nested_loop(self, component):
            return source
        return None

    def _add_fan_out(
        self, frame: Frame, local: str, task: Mapping[str, Any], component: Mapping[str, Any], items: ParamSource
    ) -> None:
        key = frame.name(local)
        for body, spec in sorted(component["dag"].get("tasks", {}).items()):
            if self.ignores_upstream_failure(spec):
                raise unsupported(
                    key,
                    f"ignore_upstream_failure on '{body}' inside a runtime dsl.ParallelFor",
                    "the loop's items run inside one job, whose failed item fails the step; move the task after "
                    "the loop, or loop over a literal list",
                )
        if frame.exit_handler is not None:
            raise unsupported(
                key,
                f"a dsl.ParallelFor run in one job inside dsl.ExitHandler '{frame.exit_handler}'",
                "move the loop out of the handler, or loop over a literal list",
            )
        scope = self.group_scope(frame, local, task)
        if any(isinstance(source, FinalStatus) for source in scope.values()):
            raise unsupported(
                key,
                "dsl.PipelineTaskFinalStatus passed into a runtime dsl.ParallelFor",
                "read the status in a task before the loop and pass the fields the loop needs",
            )
        runtime = not isinstance(items, Constant)
        plan = FanOutBuilder(self, frame, local, task, runtime).build(items, scope, component)
        plan.depends_on = sorted({*plan.depends_on, *frame.after})
        self.tasks[key] = plan
        self._add_member(frame, key, step=True)

    @staticmethod
    def _parallelism_note(task: Mapping[str, Any]) -> str:
        limit = task.get("iteratorPolicy", {}).get("parallelismLimit")
        if not limit:
            return ""
        return f"; parallelism={limit} not carried (SageMaker limits parallel steps per pipeline, not per loop)"

    @staticmethod
    def _condition_ref(key: str, name: str, scope: Mapping[str, Source]) -> ParamSource:
        if name not in scope:
            raise unsupported(key, f"condition reads unknown input '{name}'")
        source = scope[name]
        if isinstance(source, TaskOutputArtifact | ImportedArtifact):
            raise unsupported(key, f"condition on artifact '{name}'")
        if isinstance(source, Collected):
            raise unsupported(key, f"condition on the dsl.Collected list '{name}'")
        return source

    # ---- nested DAGs ---------------------------------------------------------------------------

    def child_frames(
        self, frame: Frame, local: str, task: Mapping[str, Any], component: Mapping[str, Any]
    ) -> list[Frame]:
        """The frames a group task's DAG is walked in: one, or one per loop item."""
        key = frame.name(local)
        kind = self.group_kind(task)
        if kind == "malformed":
            raise UnsupportedFeatureError(
                f"task '{key}': group {task['componentRef']['name']} has neither a loop iterator nor a condition "
                "(malformed pipeline IR); recompile the pipeline with kfp.compiler"
            )
        scope = self.group_scope(frame, local, task)
        dag = component["dag"]
        if kind == "loop":
            items, item_input = self._loop_items(frame, local, task, scope)
            return [
                Frame(
                    dag,
                    {**scope, item_input: Constant(item)},
                    f"{frame.prefix}{local}-{index}-",
                    frame.condition,
                    key,
                    f"loop '{key}' item {index}",
                    frame.exit_handler,
                    frame.after,
                )
                for index, item in enumerate(items)
            ]
        if kind == "sub-pipeline":
            origin = f"sub-pipeline '{key}'"
            scope = {**_omitted_defaults(component, scope), **scope}
            exit_of = self.exit_handler_of(frame, task)  # a pipeline as an exit task: all of it waits
            after = (*frame.after, exit_of) if exit_of else frame.after
            prefix = f"{frame.prefix}{local}-"
            return [Frame(dag, scope, prefix, frame.condition, key, origin, frame.exit_handler, after)]
        if kind == "condition":
            return [Frame(dag, scope, frame.prefix, key, None, frame.origin, frame.exit_handler, frame.after)]
        handler = key if kind == "exit-handler" else frame.exit_handler
        return [Frame(dag, scope, frame.prefix, frame.condition, key, frame.origin, handler, frame.after)]

    def group_scope(self, frame: Frame, local: str, task: Mapping[str, Any]) -> dict[str, Source]:
        key = frame.name(local)
        inner: dict[str, Source] = {}
        for name, pspec in task.get("inputs", {}).get("parameters", {}).items():
            inner[name] = self.parameter(frame, key, name, pspec)
        for name, aspec in task.get("inputs", {}).get("artifacts", {}).items():
            inner[name] = self.artifact(frame, key, name, aspec)
        return inner

    def _loop_items(
        self, frame: Frame, local: str, task: Mapping[str, Any], scope: Mapping[str, Source]
    ) -> tuple[list[Any], str]:
        key = frame.name(local)
        if "artifactIterator" in task:
            raise unsupported(
                key,
                "dsl.ParallelFor over a list of artifacts",
                "loop over a list of parameters instead (the artifacts' URIs, or the values that made them), "
                "or hand the dsl.Collected list to one task that reads every artifact",
            )
        iterator = task["parameterIterator"]
        items_spec = iterator.get("items", {})
        if "raw" in items_spec:
            items = _json_list(key, items_spec["raw"])
        else:
            source = scope.get(items_spec.get("inputParameter", ""))
            if not isinstance(source, Constant):
                raise unsupported(
                    key,
                    "dsl.ParallelFor over a list known only at run time",
                    "SageMaker cannot fan out at run time; loop over a literal list in the pipeline function",
                )
            items = source.value if isinstance(source.value, list) else _json_list(key, source.value)
        if not items:
            raise unsupported(key, "dsl.ParallelFor over an empty list")
        return items, str(iterator.get("itemInput", ""))

    # ---- values --------------------------------------------------------------------------------

    def parameter(self, frame: Frame, reader: str, name: str, spec: Mapping[str, Any]) -> ParamSource:
        if "componentInputParameter" in spec:
            source = frame.scope.get(spec["componentInputParameter"])
            if source is None:
                raise UnsupportedFeatureError(
                    f"task '{reader}': input '{name}' reads '{spec['componentInputParameter']}', which its DAG "
                    "does not declare (malformed pipeline IR); recompile the pipeline with kfp.compiler"
                )
            if isinstance(source, TaskOutputArtifact | ImportedArtifact):
                raise unsupported(reader, f"input '{name}' reads an artifact as a parameter")
            selector = spec.get("parameterExpressionSelector")
            return _select(reader, name, source, selector) if selector else source
        if "taskOutputParameter" in spec:
            ref = spec["taskOutputParameter"]
            return self.output_parameter(frame, reader, ref.get("producerTask", ""), ref.get("outputParameterKey", ""))
        if "runtimeValue" in spec:
            return Constant(spec["runtimeValue"].get("constant"))
        if "taskFinalStatus" in spec:
            # KFP allows it on the exit task only, naming the handler group as its producer.
            return FinalStatus(frame.name(str(spec["taskFinalStatus"].get("producerTask", ""))))
        raise unsupported(reader, f"input '{name}' uses {sorted(spec)}")

    def artifact(self, frame: Frame, reader: str, name: str, spec: Mapping[str, Any]) -> ArtifactSource:
        if "componentInputArtifact" in spec:
            source = frame.scope.get(spec["componentInputArtifact"])
            if not isinstance(source, TaskOutputArtifact | ImportedArtifact):
                raise UnsupportedFeatureError(
                    f"task '{reader}': input artifact '{name}' reads '{spec['componentInputArtifact']}', which is not "
                    "an artifact of its DAG (malformed pipeline IR); recompile the pipeline with kfp.compiler"
                )
            return source
        if "taskOutputArtifact" in spec:
            ref = spec["taskOutputArtifact"]
            return self.output_artifact(frame, reader, ref.get("producerTask", ""), ref.get("outputArtifactKey", ""))
        raise unsupported(reader, f"input artifact '{name}' uses {sorted(spec)}")

    def output_parameter(self, frame: Frame, reader: str, producer: str, key: str) -> ParamSource:
        task = frame.task(producer, reader)
        component = self.component(producer, task)
        if "dag" not in component:
            return TaskOutputParam(frame.name(producer), key)
        selector = component["dag"].get("outputs", {}).get("parameters", {}).get(key)
        if selector is None:
            raise UnsupportedFeatureError(
                f"task '{reader}': reads output '{key}' of '{frame.name(producer)}', which its DAG does not declare "
                "(malformed pipeline IR); recompile the pipeline with kfp.compiler"
            )
        if "valueFromOneof" in selector:
            chosen = self._chosen_branch(frame, reader, producer, task, component, selector["valueFromOneof"]
                                         .get("parameterSelectors", []))  # fmt: skip
            child, branch = chosen
            return self.output_parameter(child, reader, branch["producerSubtask"], branch.get("outputParameterKey", ""))
        inner = selector.get("valueFromParameter", {})
        if self.group_kind(task) == "loop" and self.fan_out_items(frame, producer, task, component) is not None:
            return TaskOutputParam(
                frame.name(producer),
                collected_key(inner.get("producerSubtask", ""), inner.get("outputParameterKey", "")),
            )
        children = self.child_frames(frame, producer, task, component)
        values = [
            self.output_parameter(child, reader, inner.get("producerSubtask", ""), inner.get("outputParameterKey", ""))
            for child in children
        ]
        if self.group_kind(task) != "loop":
            return values[0]
        items = [v for v in values if isinstance(v, TaskOutputParam)]
        if len(items) != len(values):
            raise unsupported(
                reader,
                f"dsl.Collected of nested loops or sub-pipeline lists from '{frame.name(producer)}'",
                "collect from one loop level: loop once over the combined items, or collect inside the outer loop",
            )
        return Collected(tuple(items))

    def output_artifact(self, frame: Frame, reader: str, producer: str, key: str) -> ArtifactSource:
        task = frame.task(producer, reader)
        component = self.component(producer, task)
        if "dag" not in component:
            if "importer" in self.executor(producer, component):
                return self.importer(frame, producer, task, component)
            return TaskOutputArtifact(frame.name(producer), key)
        selector = component["dag"].get("outputs", {}).get("artifacts", {}).get(key)
        if selector is None:
            raise UnsupportedFeatureError(
                f"task '{reader}': reads artifact '{key}' of '{frame.name(producer)}', which its DAG does not declare "
                "(malformed pipeline IR); recompile the pipeline with kfp.compiler"
            )
        selectors = selector.get("artifactSelectors", [])
        fans_out = self.group_kind(task) == "loop" and self.fan_out_items(frame, producer, task, component) is not None
        if fans_out and len(selectors) == 1:
            inner = selectors[0]
            folder = collected_folder(inner.get("producerSubtask", ""), inner.get("outputArtifactKey", ""))
            self.fan_out_folders.add(frame.name(producer))
            return TaskOutputArtifact(frame.name(producer), folder)
        if self.group_kind(task) == "loop":
            raise unsupported(
                reader,
                f"dsl.Collected of artifacts from loop '{frame.name(producer)}'",
                "a SageMaker step input is one S3 location; collect output parameters instead",
            )
        if len(selectors) != 1 and self.group_kind(task) == "branches":
            child, branch = self._chosen_branch(frame, reader, producer, task, component, selectors)
            return self.output_artifact(child, reader, branch["producerSubtask"], branch.get("outputArtifactKey", ""))
        if len(selectors) != 1:
            raise _one_of(reader, frame.name(producer))
        (child,) = self.child_frames(frame, producer, task, component)
        inner = selectors[0]
        return self.output_artifact(child, reader, inner.get("producerSubtask", ""), inner.get("outputArtifactKey", ""))

    def _chosen_branch(
        self,
        frame: Frame,
        reader: str,
        producer: str,
        task: Mapping[str, Any],
        component: Mapping[str, Any],
        selectors: list[Mapping[str, Any]],
    ) -> tuple[Frame, Mapping[str, Any]]:
        """The branch of a dsl.OneOf being read while its reader is copied into that branch.

        Outside a copy (no branch chosen yet) this raises `OneOfBranches`, which `_add_task`
        catches to copy the reader into each branch."""
        (child,) = self.child_frames(frame, producer, task, component)
        group = frame.name(producer)
        branches = {child.name(str(sel.get("producerSubtask", ""))): sel for sel in selectors}
        chosen = self.branch_choice.get(group)
        if chosen is None:
            raise OneOfBranches(reader, group, tuple(branches))
        if chosen not in branches:
            raise _one_of(reader, group)
        return child, branches[chosen]

    def importer(
        self, frame: Frame, local: str, task: Mapping[str, Any], component: Mapping[str, Any]
    ) -> ImportedArtifact:
        """A `dsl.importer`: no step; its consumers read the URI (s3://) or fetch it (https://).

        A URI computed by another task is read through that task's outputs.json (JsonGet) and must
        name an s3:// object at run time. A checksum for an https:// URL is the importer's
        `metadata={"sha256": HEX}`."""
        key = frame.name(local)
        spec = self.executor(local, component)["importer"]
        uri_spec = spec.get("artifactUri", {})
        uri: Constant | PipelineParam | TaskOutputParam
        if "constant" in uri_spec:
            uri = Constant(uri_spec["constant"])
        else:
            pspec = task.get("inputs", {}).get("parameters", {}).get(uri_spec.get("runtimeParameter", ""), {})
            source = self.parameter(frame, key, "uri", pspec)
            if not isinstance(source, Constant | PipelineParam | TaskOutputParam):
                raise unsupported(
                    key, "dsl.importer of a dsl.Collected list", "import one URI, a parameter or one task's output"
                )
            uri = source
        if isinstance(uri, Constant) and not str(uri.value).startswith(IMPORT_SCHEMES):
            scheme = str(uri.value).split("://", 1)[0] + "://" if "://" in str(uri.value) else "a local path"
            raise unsupported(
                key,
                f"dsl.importer of {uri.value!r} ({scheme})",
                "SageMaker steps read s3:// inputs or fetch https:// URLs; "
                "copy the object to S3 and import its s3:// URI",
            )
        sha256 = spec.get("metadata", {}).get("sha256")
        if sha256 is not None and not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
            raise unsupported(key, f"dsl.importer metadata sha256 {sha256!r}", "give the 64 lowercase hex digits")
        return ImportedArtifact(uri, dict(spec.get("typeSchema", {})), f"dsl.importer '{key}'", sha256)

    # ---- tasks ---------------------------------------------------------------------------------

    def _add_task(self, frame: Frame, local: str, task: Mapping[str, Any], component: Mapping[str, Any]) -> None:
        key = frame.name(local)
        executor = self.executor(local, component)
        if "container" not in executor:
            raise unsupported(key, f"executor kind {sorted(executor)}")
        image = str(executor["container"].get("image", ""))
        if image.startswith(_KUBERNETES_STUB_IMAGES):
            raise unsupported(
                key,
                "a Kubernetes PersistentVolumeClaim (kfp-kubernetes CreatePVC/DeletePVC)",
                "SageMaker steps share data through S3 artifacts, not volumes",
            )
        if key in self.tasks or key in self.conditions or key in self.groups:
            raise UnsupportedFeatureError(
                f"task '{key}': two tasks get the same step name after inlining sub-pipelines and loops; "
                "rename one of them"
            )
        handler = self.exit_handler_of(frame, task)
        if handler is not None:
            self.exit_handlers[handler] = key
        try:
            plan = self._task_plan(frame, local, task, component, key, frame.condition)
        except OneOfBranches as branches:
            if branches.reader != key:
                raise
            self.one_of_readers.append(partial(self._add_branch_copies, frame, local, task, component, branches))
            return
        self.tasks[key] = plan
        self._add_member(frame, key, step=True)

    def _add_branch_copies(
        self, frame: Frame, local: str, task: Mapping[str, Any], component: Mapping[str, Any], branches: OneOfBranches
    ) -> None:
        """dsl.OneOf: one copy of the reader per branch, inside that branch's ConditionStep, reading
        that branch's output; exactly one copy runs, as exactly one branch does."""
        key = frame.name(local)
        copies = []
        for branch in branches.conditions:
            condition = self.conditions[branch]
            if condition.group != frame.condition:
                raise unsupported(
                    key,
                    f"dsl.OneOf over the branches of '{branches.group}' read from another dsl.If than theirs",
                    "a copy of the reader goes into each branch, which drops the reader's own condition; "
                    "read the dsl.OneOf outside that dsl.If, or move the dsl.If into the branches",
                )
            copy = step_name(f"{key}-{branch}")
            self.branch_choice[branches.group] = branch
            try:
                plan = self._task_plan(frame, local, task, component, copy, branch)
            except OneOfBranches as other:
                raise unsupported(
                    key,
                    f"dsl.OneOf over the branches of both '{branches.group}' and '{other.group}'",
                    "one copy per branch cannot choose from two dsl.If/Elif/Else groups at once; "
                    "combine them into one OneOf in a task first",
                ) from None
            finally:
                self.branch_choice.pop(branches.group, None)
            # the copy is inside its branch's ConditionStep: no wait for the other branches' steps
            plan.depends_on = [d for d in plan.depends_on if d != branches.group and not self._inside(branch, d)]
            self.tasks[copy] = plan
            condition.members.append(copy)
            if frame.owner is not None and frame.owner in self.groups:
                self.groups[frame.owner].append(copy)
            copies.append(copy)
        self.one_of_copies[key] = copies
        self.notes.append(
            f"dsl.OneOf over '{branches.group}' read by '{key}' -> one copy per branch ({', '.join(copies)}), "
            "each inside its branch's ConditionStep: exactly one runs"
        )

    def _inside(self, key: str, group: str) -> bool:
        """Whether `key` is a member of `group` (a condition or a group without a step), at any depth."""
        members = self.conditions[group].members if group in self.conditions else self.groups.get(group, [])
        return key in members or any(self._inside(key, m) for m in members if m in self.groups or m in self.conditions)

    def _task_plan(
        self,
        frame: Frame,
        local: str,
        task: Mapping[str, Any],
        component: Mapping[str, Any],
        key: str,
        group: str | None,
    ) -> TaskPlan:
        executor = self.executor(local, component)
        inputs = task.get("inputs", {})
        parameters = {
            name: self.parameter(frame, key, name, pspec)
            for name, pspec in sorted(inputs.get("parameters", {}).items())
        }
        artifacts = {
            name: self.artifact(frame, key, name, aspec) for name, aspec in sorted(inputs.get("artifacts", {}).items())
        }
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        models = sorted(n for n, a in outputs.items() if a["artifactType"].get("schemaTitle") == MODEL_SCHEMA)
        if len(models) > 1:
            raise unsupported(key, f"more than one Model output ({', '.join(models)})")
        for name, out in outputs.items():
            if out.get("isArtifactList"):
                raise unsupported(key, f"artifact list output '{name}'")
        for name, art in component.get("inputDefinitions", {}).get("artifacts", {}).items():
            if art.get("isArtifactList") and not self._is_collected_folder(artifacts.get(name)):
                raise unsupported(key, f"artifact list input '{name}' (dsl.Collected of artifacts)")
        return TaskPlan(
            key=key,
            display_name=task.get("taskInfo", {}).get("name", local),
            component_name=task["componentRef"]["name"],
            component={k: component[k] for k in ("inputDefinitions", "outputDefinitions") if k in component},
            container=executor["container"],
            parameters=parameters,
            artifacts=artifacts,
            kind="training" if models else "processing",
            model_output=models[0] if models else None,
            depends_on=sorted({*(frame.name(d) for d in task.get("dependentTasks", [])), *frame.after}),
            group=group,
            caching=bool(task.get("cachingOptions", {}).get("enableCache", False)),
            retry=task.get("retryPolicy"),
            executor=str(component.get("executorLabel", "")),
            origin=frame.origin,
            exit_handler=frame.exit_handler,
            exit_for=self.exit_handler_of(frame, task),
            ignore_upstream_failure=self.ignores_upstream_failure(task) and self.exit_handler_of(frame, task) is None,
        )

    def _is_collected_folder(self, source: ArtifactSource | None) -> bool:
        """An artifact list gathered by a fan-out step: one folder, `<i>/` per item."""
        if not isinstance(source, TaskOutputArtifact):
            return False
        return source.task in self.fan_out_folders


class OneOfBranches(Exception):  # noqa: N818 (a signal inside the walk, never shown to a user)
    """A task reads a dsl.OneOf whose branch is not chosen yet: it is copied into each branch."""

    def __init__(self, reader: str, group: str, conditions: tuple[str, ...]) -> None:
        super().__init__(reader, group)
        self.reader = reader
        self.group = group
        self.conditions = conditions


def _one_of(reader: str, group: str) -> UnsupportedFeatureError:
    return unsupported(
        reader,
        f"dsl.OneOf over the branches of '{group}' passed into a group (a dsl.If, loop or sub-pipeline)",
        "SageMaker has no value for whichever branch ran, so each reader of a dsl.OneOf is copied into every "
        "branch and must sit in the DAG of the dsl.If/Elif/Else: read it outside other groups",
    )


def _json_list(key: str, raw: Any) -> list[Any]:
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise UnsupportedFeatureError(f"task '{key}': loop items {raw!r} are not a JSON list: {exc.msg}") from exc
    if not isinstance(items, list):
        raise UnsupportedFeatureError(f"task '{key}': loop items {raw!r} are not a JSON list")
    return items


def _select(reader: str, name: str, source: ParamSource, selector: str) -> ParamSource:
    """A field of a loop item (`item.a`), which is a constant once the loop is unrolled."""
    match = _FIELD_SELECTOR.match(selector)
    if not isinstance(source, Constant) or match is None:
        raise unsupported(reader, f"input '{name}' selects {selector!r} from a value known only at run time")
    value = source.value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, dict) or match.group(1) not in value:
        raise UnsupportedFeatureError(
            f"task '{reader}': input '{name}': loop item {source.value!r} has no field {match.group(1)!r}"
        )
    return Constant(value[match.group(1)])


def _refs(expression: cel.Expr) -> list[str]:
    if isinstance(expression, cel.Ref):
        return [expression.name]
    if isinstance(expression, cel.Literal):
        return []
    if isinstance(expression, cel.Compare):
        return _refs(expression.left) + _refs(expression.right)
    if isinstance(expression, cel.Not):
        return _refs(expression.operand)
    return [name for operand in expression.operands for name in _refs(operand)]


def _omitted_defaults(component: Mapping[str, Any], given: Mapping[str, Source]) -> dict[str, Source]:
    """A sub-pipeline's optional inputs its caller left out, at their defaults, as KFP passes them
    (an optional input without a default is None)."""
    defaults: dict[str, Source] = {}
    for name, spec in component.get("inputDefinitions", {}).get("parameters", {}).items():
        if name in given:
            continue
        if "defaultValue" in spec:
            defaults[name] = Constant(spec["defaultValue"])
        elif spec.get("isOptional"):
            defaults[name] = Constant(None)
    return defaults
