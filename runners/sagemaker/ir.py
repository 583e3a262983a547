"""Read a compiled KFP PipelineSpec (IR) into a flat, validated plan of tasks and conditions.

Pure data in, pure data out: no SageMaker SDK here. Nested DAGs that KFP creates for `dsl.If` are
flattened (their inputs resolved back to pipeline parameters, constants and upstream outputs), and
everything SageMaker cannot express is rejected here with the task and the feature named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel

PARAMETER_TYPES = ("STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN")
MODEL_SCHEMA = "system.Model"


@dataclass(frozen=True)
class PipelineParam:
    name: str


@dataclass(frozen=True)
class Constant:
    value: Any


@dataclass(frozen=True)
class TaskOutputParam:
    task: str
    key: str


@dataclass(frozen=True)
class TaskOutputArtifact:
    task: str
    key: str


ParamSource = PipelineParam | Constant | TaskOutputParam
Source = ParamSource | TaskOutputArtifact


@dataclass(frozen=True)
class ParameterPlan:
    name: str
    type: str
    default: Any
    has_default: bool


@dataclass
class TaskPlan:
    key: str
    display_name: str
    component_name: str
    component: dict[str, Any]
    container: dict[str, Any]
    parameters: dict[str, ParamSource]
    artifacts: dict[str, TaskOutputArtifact]
    kind: Literal["training", "processing"]
    model_output: str | None
    depends_on: list[str]
    group: str | None
    caching: bool
    retry: dict[str, Any] | None

    def output_parameters(self) -> dict[str, Any]:
        return dict(self.component.get("outputDefinitions", {}).get("parameters", {}))

    def output_artifacts(self) -> dict[str, Any]:
        return dict(self.component.get("outputDefinitions", {}).get("artifacts", {}))

    def input_artifact_types(self) -> dict[str, Any]:
        return dict(self.component.get("inputDefinitions", {}).get("artifacts", {}))


@dataclass
class ConditionPlan:
    key: str
    display_name: str
    text: str
    expression: cel.Expr
    refs: dict[str, ParamSource]
    depends_on: list[str]
    group: str | None
    members: list[str] = field(default_factory=list)


@dataclass
class PipelinePlan:
    name: str
    description: str
    parameters: dict[str, ParameterPlan]
    tasks: dict[str, TaskPlan]
    conditions: dict[str, ConditionPlan]
    # dsl.If/Elif/Else wrap their branches in a "condition-branches" DAG with no condition of its own
    branch_groups: dict[str, list[str]] = field(default_factory=dict)


def load_ir(path: str | Path) -> dict[str, Any]:
    """Load a KFP IR YAML file (the first document; platform specs may follow)."""
    text = Path(path).read_text(encoding="utf-8")
    docs = [d for d in yaml.safe_load_all(text) if d]
    if not docs or "root" not in docs[0] or "deploymentSpec" not in docs[0]:
        raise UnsupportedFeatureError(f"{path} is not a compiled KFP pipeline (no root/deploymentSpec)")
    spec: dict[str, Any] = docs[0]
    return spec


def _unsupported(task: str, feature: str, hint: str = "") -> UnsupportedFeatureError:
    suffix = f"; {hint}" if hint else ""
    return UnsupportedFeatureError(f"task '{task}': {feature} cannot be compiled to SageMaker Pipelines{suffix}")


def _pipeline_parameters(spec: dict[str, Any]) -> dict[str, ParameterPlan]:
    defs = spec["root"].get("inputDefinitions", {})
    if defs.get("artifacts"):
        names = ", ".join(sorted(defs["artifacts"]))
        raise UnsupportedFeatureError(
            f"pipeline inputs {names}: input artifacts of the pipeline cannot be compiled to SageMaker "
            "Pipelines; pass an S3 URI as a string parameter instead"
        )
    params: dict[str, ParameterPlan] = {}
    for name, pdef in sorted(defs.get("parameters", {}).items()):
        ptype = pdef["parameterType"]
        if ptype not in PARAMETER_TYPES:
            raise UnsupportedFeatureError(
                f"pipeline parameter '{name}': type {ptype} (dict/list) has no SageMaker parameter type; "
                "use a string parameter holding JSON"
            )
        has_default = "defaultValue" in pdef
        default = pdef.get("defaultValue")
        if ptype == "NUMBER_INTEGER" and default is not None:
            default = int(default)
        params[name] = ParameterPlan(name, ptype, default, has_default)
    return params


def _resolve_parameter(task: str, name: str, spec: dict[str, Any], scope: dict[str, Source]) -> ParamSource:
    if "componentInputParameter" in spec:
        source = scope[spec["componentInputParameter"]]
        assert not isinstance(source, TaskOutputArtifact)
        return source
    if "taskOutputParameter" in spec:
        ref = spec["taskOutputParameter"]
        return TaskOutputParam(ref["producerTask"], ref["outputParameterKey"])
    if "runtimeValue" in spec:
        return Constant(spec["runtimeValue"]["constant"])
    if "taskFinalStatus" in spec:
        raise _unsupported(task, f"input '{name}' reads PipelineTaskFinalStatus (dsl.ExitHandler)")
    raise _unsupported(task, f"input '{name}' uses {sorted(spec)} (e.g. ParallelFor items or dsl.OneOf)")


def _resolve_artifact(task: str, name: str, spec: dict[str, Any], scope: dict[str, Source]) -> TaskOutputArtifact:
    if "componentInputArtifact" in spec:
        source = scope[spec["componentInputArtifact"]]
        assert isinstance(source, TaskOutputArtifact)
        return source
    if "taskOutputArtifact" in spec:
        ref = spec["taskOutputArtifact"]
        return TaskOutputArtifact(ref["producerTask"], ref["outputArtifactKey"])
    raise _unsupported(task, f"input artifact '{name}' uses {sorted(spec)} (e.g. dsl.Collected or dsl.OneOf)")


class _Walker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components: dict[str, Any] = spec.get("components", {})
        self.executors: dict[str, Any] = spec["deploymentSpec"]["executors"]
        self.tasks: dict[str, TaskPlan] = {}
        self.conditions: dict[str, ConditionPlan] = {}
        self.branch_groups: dict[str, list[str]] = {}

    def walk(self, dag: dict[str, Any], scope: dict[str, Source], group: str | None) -> None:
        for key, task in sorted(dag.get("tasks", {}).items()):
            self._check_task(key, task)
            component = self.components[task["componentRef"]["name"]]
            if "dag" in component:
                self._walk_group(key, task, component, scope, group)
            else:
                self._add_task(key, task, component, scope, group)

    def _check_task(self, key: str, task: dict[str, Any]) -> None:
        if "iteratorPolicy" in task or "parameterIterator" in task or "artifactIterator" in task:
            raise _unsupported(key, "dsl.ParallelFor", "unroll the loop in the pipeline function")
        strategy = task.get("triggerPolicy", {}).get("strategy")
        if strategy and strategy != "ALL_UPSTREAM_TASKS_SUCCEEDED":
            raise _unsupported(key, f"trigger strategy {strategy} (dsl.ExitHandler or ignore_upstream_failure)")

    def _group_scope(self, key: str, task: dict[str, Any], scope: dict[str, Source]) -> dict[str, Source]:
        inner: dict[str, Source] = {}
        for name, pspec in task.get("inputs", {}).get("parameters", {}).items():
            inner[name] = _resolve_parameter(key, name, pspec, scope)
        for name, aspec in task.get("inputs", {}).get("artifacts", {}).items():
            inner[name] = _resolve_artifact(key, name, aspec, scope)
        return inner

    def _walk_group(
        self, key: str, task: dict[str, Any], component: dict[str, Any], scope: dict[str, Source], group: str | None
    ) -> None:
        condition = task.get("triggerPolicy", {}).get("condition")
        if task["componentRef"]["name"].startswith("comp-exit-handler"):
            raise _unsupported(key, "dsl.ExitHandler")
        if not condition and task["componentRef"]["name"].startswith("comp-condition-branches"):
            self.branch_groups[key] = sorted(component["dag"].get("tasks", {}))
            self.walk(component["dag"], self._group_scope(key, task, scope), group)
            return
        if not condition:
            raise _unsupported(key, "a sub-pipeline used as a component (nested DAG without a condition)")
        inner = self._group_scope(key, task, scope)
        expression = cel.parse_condition(condition, task=key)
        refs = {name: self._param_ref(key, name, inner) for name in _refs(expression)}
        self.conditions[key] = ConditionPlan(
            key=key,
            display_name=task.get("taskInfo", {}).get("name", key),
            text=condition,
            expression=expression,
            refs=refs,
            depends_on=sorted(task.get("dependentTasks", [])),
            group=group,
        )
        if group is not None:
            self.conditions[group].members.append(key)
        self.walk(component["dag"], inner, key)

    @staticmethod
    def _param_ref(key: str, name: str, scope: dict[str, Source]) -> ParamSource:
        if name not in scope:
            raise _unsupported(key, f"condition reads unknown input '{name}'")
        source = scope[name]
        if isinstance(source, TaskOutputArtifact):
            raise _unsupported(key, f"condition on artifact '{name}'")
        return source

    def _add_task(
        self, key: str, task: dict[str, Any], component: dict[str, Any], scope: dict[str, Source], group: str | None
    ) -> None:
        executor = self.executors[component["executorLabel"]]
        if "importer" in executor:
            raise _unsupported(key, "dsl.importer", "pass the S3 URI as a string parameter instead")
        if "container" not in executor:
            raise _unsupported(key, f"executor kind {sorted(executor)}")
        inputs = task.get("inputs", {})
        parameters = {
            name: _resolve_parameter(key, name, pspec, scope)
            for name, pspec in sorted(inputs.get("parameters", {}).items())
        }
        artifacts = {
            name: _resolve_artifact(key, name, aspec, scope)
            for name, aspec in sorted(inputs.get("artifacts", {}).items())
        }
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        models = sorted(n for n, a in outputs.items() if a["artifactType"].get("schemaTitle") == MODEL_SCHEMA)
        if len(models) > 1:
            raise _unsupported(key, f"more than one Model output ({', '.join(models)})")
        for name, out in outputs.items():
            if out.get("isArtifactList"):
                raise _unsupported(key, f"artifact list output '{name}'")
        self.tasks[key] = TaskPlan(
            key=key,
            display_name=task.get("taskInfo", {}).get("name", key),
            component_name=task["componentRef"]["name"],
            component={k: component[k] for k in ("inputDefinitions", "outputDefinitions") if k in component},
            container=executor["container"],
            parameters=parameters,
            artifacts=artifacts,
            kind="training" if models else "processing",
            model_output=models[0] if models else None,
            depends_on=sorted(task.get("dependentTasks", [])),
            group=group,
            caching=bool(task.get("cachingOptions", {}).get("enableCache", False)),
            retry=task.get("retryPolicy"),
        )
        if group is not None:
            self.conditions[group].members.append(key)


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


def _ancestors(group: str | None, conditions: dict[str, ConditionPlan]) -> set[str]:
    found: set[str] = set()
    while group is not None:
        found.add(group)
        group = conditions[group].group
    return found


def _validate(plan: PipelinePlan) -> None:
    """Reject data flow SageMaker cannot express: reads of outputs that may not exist."""
    for task in plan.tasks.values():
        consumer_groups = _ancestors(task.group, plan.conditions)
        sources: list[tuple[str, Source]] = [*task.parameters.items(), *task.artifacts.items()]
        for name, source in sources:
            if isinstance(source, PipelineParam | Constant):
                continue
            producer = plan.tasks[source.task]
            if producer.group is not None and producer.group not in consumer_groups:
                raise _unsupported(
                    task.key, f"input '{name}' reads '{producer.key}' from inside a dsl.If branch it is not in"
                )
            if producer.kind == "training" and source.key != producer.model_output:
                raise _unsupported(
                    task.key,
                    f"input '{name}' reads output '{source.key}' of training task '{producer.key}' "
                    "(a training job only exposes its Model)",
                    "return it from a separate step",
                )
    for condition in plan.conditions.values():
        for name, source in condition.refs.items():
            if isinstance(source, TaskOutputParam) and plan.tasks[source.task].kind == "training":
                raise _unsupported(
                    condition.key,
                    f"condition input '{name}' is an output parameter of training task '{source.task}' "
                    "(no PropertyFile on TrainingStep)",
                )


def plan_pipeline(spec: dict[str, Any]) -> PipelinePlan:
    """Flatten and validate a KFP IR dict into a PipelinePlan."""
    parameters = _pipeline_parameters(spec)
    walker = _Walker(spec)
    scope: dict[str, Source] = {name: PipelineParam(name) for name in parameters}
    walker.walk(spec["root"]["dag"], scope, None)
    info = spec.get("pipelineInfo", {})
    plan = PipelinePlan(
        name=info.get("name", "pipeline"),
        description=info.get("description", ""),
        parameters=parameters,
        tasks=walker.tasks,
        conditions=walker.conditions,
        branch_groups=walker.branch_groups,
    )
    _validate(plan)
    return plan
