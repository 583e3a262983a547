"""Read a compiled KFP PipelineSpec (IR) into a flat, validated plan of tasks and conditions.

Pure data in, pure data out: no SageMaker SDK here. SageMaker's DAG is flat, so every nested DAG
KFP writes is inlined here (see `inline.py` for how names and values are rewired): `dsl.If` groups
become conditions, `dsl.If/Elif/Else` branch groups, sub-pipelines and `dsl.ParallelFor` over a list
fixed at compile time (unrolled) become plain tasks. Everything SageMaker cannot express is
rejected with the task and the feature named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel

PARAMETER_TYPES = ("STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT")
# Lists and dicts have no SageMaker parameter type: they travel as a JSON string the shim decodes.
JSON_TYPES = ("LIST", "STRUCT")
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
class Collected:
    """``dsl.Collected`` over an unrolled loop: one output per iteration, in item order."""

    items: tuple[TaskOutputParam, ...]


@dataclass(frozen=True)
class TaskOutputArtifact:
    task: str
    key: str


@dataclass(frozen=True)
class ImportedArtifact:
    """An artifact read straight from its URI: a ``dsl.importer`` or an input artifact of the pipeline.

    An s3:// URI (a literal, a parameter, or another task's output read through JsonGet) is an input
    channel of each consumer; an https:// literal is fetched by the consumer's shim, checked against
    `sha256` when the importer's metadata gives one."""

    uri: Constant | PipelineParam | TaskOutputParam
    artifact_type: dict[str, Any]
    origin: str
    sha256: str | None = None

    @property
    def fetched(self) -> bool:
        """Downloaded by the step itself (https://), not by SageMaker from S3."""
        return isinstance(self.uri, Constant) and str(self.uri.value).startswith("https://")


@dataclass(frozen=True)
class FinalStatus:
    """``dsl.PipelineTaskFinalStatus`` of an exit task: how the tasks of ``dsl.ExitHandler`` `handler`
    ended, assembled by the exit task's shim from the statuses they recorded."""

    handler: str


ParamSource = PipelineParam | Constant | TaskOutputParam | Collected | FinalStatus
ArtifactSource = TaskOutputArtifact | ImportedArtifact
Source = ParamSource | ArtifactSource

# The fan-out step's parameter holding the loop's items (a JSON list): see `FanOutPlan`.
ITEMS_PARAMETER = "kubesage-items"


@dataclass(frozen=True)
class BodyTask:
    """One container task of a fan-out's loop body, as the shim runs it once per item (and per
    iteration of any loop around it inside the body).

    References are scoped as in KFP's IR: `inputs` says where each parameter comes from,
    `{"constant": V}`, `{"input": NAME, "field": FIELD or None}` (an input of the DAG the task is in,
    or a field of it: the loop item, an outer value) or `{"task": LOCAL, "output": KEY}` (a sibling
    in the same DAG, same item; a group sibling's output goes through that group's `outputs`).
    `artifacts` likewise: `{"input": NAME}` or `{"task": LOCAL, "output": KEY}`.
    """

    local: str
    display_name: str
    component: dict[str, Any]
    container: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    artifacts: dict[str, dict[str, Any]]
    after: tuple[str, ...]  # siblings that run before this one for the same item
    executor: str = ""  # its executor label, where kfp-kubernetes settings are keyed


@dataclass(frozen=True)
class BodyGroup:
    """A DAG inside a fan-out's loop body: a `dsl.If/Elif/Else` branch (`condition`), a nested
    `dsl.ParallelFor` (`loop`) or a sub-pipeline or branch group (`dag`), run inside the same job.

    `inputs`/`artifacts` bind the group's own inputs in its parent's scope (as a task's are); its
    members read them as `{"input": NAME}`. A condition is the CEL text KFP wrote, over those inputs.
    A loop's items are `{"raw": [...]}` or `{"input": NAME}`; each iteration sees the item as input
    `item_input`. `outputs` (parameters) and `output_artifacts` select, per output, the member
    outputs it reads: several for a `dsl.OneOf` (the one that ran), one otherwise; a loop's output is
    the list of its iterations' values (`dsl.Collected`).
    """

    local: str
    kind: Literal["condition", "loop", "dag"]
    inputs: dict[str, dict[str, Any]]
    artifacts: dict[str, dict[str, Any]]
    members: tuple[BodyTask | BodyGroup, ...]  # in run order
    outputs: dict[str, tuple[tuple[str, str], ...]]
    output_artifacts: dict[str, tuple[tuple[str, str], ...]]
    after: tuple[str, ...] = ()
    condition: str = ""
    items: dict[str, Any] | None = None
    item_input: str = ""

    def tasks(self, prefix: str = "") -> list[tuple[str, BodyTask]]:
        """Every container task inside, at any depth, with its path (`condition-2/for-loop-4/double`)."""
        found: list[tuple[str, BodyTask]] = []
        for member in self.members:
            path = f"{prefix}{member.local}"
            found += member.tasks(f"{path}/") if isinstance(member, BodyGroup) else [(path, member)]
        return found


@dataclass(frozen=True)
class FanOutPlan:
    """A `dsl.ParallelFor` run inside one job: the body DAG once per item, items in parallel processes.

    `body` is the loop's own DAG (kind `loop`); its `inputs` bind the loop's inputs to the step's:
    `{"item": None}` (the item), `{"param": NAME}` (a parameter of the step), `{"constant": V}`, and
    its `artifacts` to the step's input channels (`{"channel": NAME}`). `collected` maps each output
    parameter of the step (a JSON list, one value per item) to the body's output it gathers;
    `collected_artifacts` each output folder (`<i>/` per artifact, in item order) likewise, and
    `artifact_files` the file name under each `<i>/`.
    """

    loop: str
    parallelism: int | None
    body: BodyGroup
    collected: dict[str, str]
    collected_artifacts: dict[str, str]
    artifact_files: dict[str, str]
    runtime: bool  # the items are known only at run time (else: literal, fanned out for its outputs)


@dataclass(frozen=True)
class ParameterPlan:
    name: str
    type: str
    default: Any
    has_default: bool
    # set for an input artifact of the pipeline, which becomes a string parameter holding its S3 URI
    artifact_type: dict[str, Any] | None = None


@dataclass
class TaskPlan:
    key: str
    display_name: str
    component_name: str
    component: dict[str, Any]
    container: dict[str, Any]
    parameters: dict[str, ParamSource]
    artifacts: dict[str, ArtifactSource]
    kind: Literal["training", "processing"]
    model_output: str | None
    depends_on: list[str]
    group: str | None
    caching: bool
    retry: dict[str, Any] | None
    executor: str = ""
    origin: str = ""  # how the task got here when inlined: "sub-pipeline 'x'", "loop 'for-loop-2' item 0"
    fan_out: FanOutPlan | None = None  # set for a dsl.ParallelFor run inside this one step
    # inside a dsl.ExitHandler: the handler's key (the step records a failure instead of failing)
    exit_handler: str | None = None
    exit_for: str | None = None  # the dsl.ExitHandler this task is the exit task of
    # `.ignore_upstream_failure()`: the task runs after its upstream tasks even when one failed
    ignore_upstream_failure: bool = False
    # upstream of such a task: the step records its failure (outputs.json) instead of failing
    records_failure: bool = False

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
    # DAGs without a step of their own (dsl.If/Elif/Else branch groups, sub-pipelines, unrolled
    # loops): group key -> the keys directly inside it (tasks, conditions, other groups)
    groups: dict[str, list[str]] = field(default_factory=dict)
    # importer task key -> what it imports (no step: consumers read the S3 URI directly)
    imports: dict[str, ImportedArtifact] = field(default_factory=dict)
    # per-feature lines for the explain report (inlined sub-pipelines, unrolled loops, ...)
    notes: list[str] = field(default_factory=list)
    # a reader of dsl.OneOf -> its copies, one inside each branch's ConditionStep
    one_of: dict[str, list[str]] = field(default_factory=dict)
    # dsl.ExitHandler group -> its exit task
    exit_handlers: dict[str, str] = field(default_factory=dict)
    # a task with ignore_upstream_failure -> its upstream tasks, which record their failures
    ignoring: dict[str, list[str]] = field(default_factory=dict)

    def handler_tasks(self, handler: str) -> list[str]:
        """The tasks inside a dsl.ExitHandler, which record their failure instead of failing."""
        return sorted(key for key, task in self.tasks.items() if task.exit_handler == handler)

    def tasks_in(self, key: str) -> list[str]:
        """Every task inside `key` (a task, a condition or a group), at any depth."""
        if key in self.tasks:
            return [key]
        members = self.conditions[key].members if key in self.conditions else self.groups.get(key, [])
        return [task for member in members for task in self.tasks_in(member)]

    def step_dependencies(self, key: str) -> list[str]:
        """The SageMaker step names a dependency on `key` means: a task or a ConditionStep itself,
        a group's members; an importer (no step) nothing."""
        if key in self.tasks or key in self.conditions:
            return [key]
        return [step for member in self.groups.get(key, []) for step in self.step_dependencies(member)]


def unsupported(task: str, feature: str, hint: str = "") -> UnsupportedFeatureError:
    suffix = f"; {hint}" if hint else ""
    return UnsupportedFeatureError(f"task '{task}': {feature} cannot be compiled to SageMaker Pipelines{suffix}")


def _pipeline_parameters(spec: dict[str, Any]) -> dict[str, ParameterPlan]:
    defs = spec["root"].get("inputDefinitions", {})
    params: dict[str, ParameterPlan] = {}
    for name, pdef in sorted(defs.get("parameters", {}).items()):
        ptype = pdef["parameterType"]
        if ptype == "TASK_FINAL_STATUS":
            # KFP fills it only for an exit task; its API server refuses a value for it on a root component
            raise UnsupportedFeatureError(
                f"pipeline parameter '{name}': a dsl.PipelineTaskFinalStatus input, which KFP gives only to the exit "
                "task of a dsl.ExitHandler (its API refuses a value for it on a run of this pipeline on its own), "
                "cannot be compiled to SageMaker Pipelines as a pipeline of its own; compile the pipeline that uses "
                "it in dsl.ExitHandler(...) (translated: its steps run after the handler's tasks and get their status)"
            )
        if ptype not in PARAMETER_TYPES:
            raise UnsupportedFeatureError(
                f"pipeline parameter '{name}': type {ptype} has no SageMaker parameter type; use a string parameter"
            )
        has_default = "defaultValue" in pdef
        default = pdef.get("defaultValue")
        if ptype == "NUMBER_INTEGER" and default is not None:
            default = int(default)
        params[name] = ParameterPlan(name, ptype, default, has_default)
    for name, adef in sorted(defs.get("artifacts", {}).items()):
        if adef.get("isArtifactList"):
            raise UnsupportedFeatureError(
                f"pipeline input '{name}': a list of artifacts cannot be compiled to SageMaker Pipelines; "
                "pass one S3 prefix instead"
            )
        params[name] = ParameterPlan(name, "STRING", None, False, artifact_type=adef["artifactType"])
    return params


def _ancestors(group: str | None, conditions: dict[str, ConditionPlan]) -> set[str]:
    found: set[str] = set()
    while group is not None:
        found.add(group)
        group = conditions[group].group
    return found


def producers(source: Source) -> list[TaskOutputParam | TaskOutputArtifact]:
    if isinstance(source, TaskOutputParam | TaskOutputArtifact):
        return [source]
    if isinstance(source, ImportedArtifact) and isinstance(source.uri, TaskOutputParam):
        return [source.uri]
    if isinstance(source, Collected):
        return list(source.items)
    return []


_ONE_OF_COPIES = (
    "that task runs as one copy inside each dsl.If branch and SageMaker has no value for whichever copy ran; "
    "move this task into the branches too, or pick the value with another dsl.OneOf"
)


def _validate(plan: PipelinePlan) -> None:
    """Reject data flow SageMaker cannot express: reads of outputs that may not exist."""
    for task in plan.tasks.values():
        consumer_groups = _ancestors(task.group, plan.conditions)
        sources: list[tuple[str, Source]] = [*task.parameters.items(), *task.artifacts.items()]
        for name, whole in sources:
            for source in producers(whole):
                if source.task in plan.one_of:
                    raise unsupported(
                        task.key, f"input '{name}' reads '{source.task}', which reads a dsl.OneOf", _ONE_OF_COPIES
                    )
                producer = plan.tasks[source.task]
                if producer.group is not None and producer.group not in consumer_groups:
                    raise unsupported(
                        task.key,
                        f"input '{name}' reading '{producer.key}', which runs inside a dsl.If branch this task is "
                        "not in (so it may not have run; SageMaker has no step that waits for a step that may be "
                        "skipped)",
                        "move this task into the same dsl.If, or give it the branch's value through dsl.OneOf over "
                        "If/Elif/Else branches (translated)",
                    )
                if producer.kind == "training" and source.key != producer.model_output:
                    raise unsupported(
                        task.key,
                        f"input '{name}' reads output '{source.key}' of training task '{producer.key}' "
                        "(a training job only exposes its Model)",
                        "return it from a separate step",
                    )
    for condition in plan.conditions.values():
        for name, ref in condition.refs.items():
            if isinstance(ref, TaskOutputParam) and ref.task in plan.one_of:
                raise unsupported(condition.key, f"condition on '{ref.task}', which reads a dsl.OneOf", _ONE_OF_COPIES)
            if isinstance(ref, TaskOutputParam) and plan.tasks[ref.task].kind == "training":
                raise unsupported(
                    condition.key,
                    f"condition input '{name}' is an output parameter of training task '{ref.task}' "
                    "(no PropertyFile on TrainingStep)",
                )
    _validate_exit_handlers(plan)
    _ignore_upstream_failure(plan)
    for task in plan.tasks.values():
        for dep in task.depends_on:
            if dep in plan.one_of:
                raise unsupported(task.key, f"runs after '{dep}', which reads a dsl.OneOf", _ONE_OF_COPIES)


def _validate_exit_handlers(plan: PipelinePlan) -> None:
    """What the exit-handler translation cannot keep honest: a training task's failure (no outputs.json
    to record it in), and a task outside the handler reading a task inside it (it would get stand-ins)."""
    for task in plan.tasks.values():
        if task.exit_handler is not None and task.kind == "training":
            raise unsupported(
                task.key,
                f"a training task inside dsl.ExitHandler '{task.exit_handler}'",
                "a TrainingStep has no outputs.json to record its failure in, so the exit task could not run after "
                "it; train outside the handler, or return the Model from a processing task",
            )
        for name, source in [*task.parameters.items(), *task.artifacts.items()]:
            for producer in producers(source):
                inside = plan.tasks[producer.task].exit_handler if producer.task in plan.tasks else None
                if inside is not None and task.exit_handler != inside:
                    raise unsupported(
                        task.key,
                        f"input '{name}' reads '{producer.task}' from inside dsl.ExitHandler '{inside}'",
                        "a task inside the handler that failed leaves stand-in outputs; read it inside the handler",
                    )


_IGNORE_HINT = (
    "SageMaker runs a step only when every step it depends on succeeded, so its upstream tasks record a failure "
    "instead of failing, which only a task that ignores it may read"
)


def _ignore_upstream_failure(plan: PipelinePlan) -> None:
    """`.ignore_upstream_failure()` as "record, run the task, then fail", as dsl.ExitHandler: its upstream tasks
    record a failure (stand-in outputs, `"status": "failed"`) and end successfully, the task runs after them and
    gets each input from an upstream that did not succeed at its default, as KFP does; a status step then fails
    the execution. What that cannot keep is refused."""
    for key in sorted(k for k, t in plan.tasks.items() if t.ignore_upstream_failure):
        task = plan.tasks[key]
        if task.group is not None:
            raise unsupported(key, "ignore_upstream_failure inside a dsl.If", "move the task out of the dsl.If")
        upstream = []
        for dep in task.depends_on:
            if dep in plan.imports:
                continue
            if dep not in plan.tasks:
                raise unsupported(
                    key,
                    f"ignore_upstream_failure after the group '{dep}' (a sub-pipeline, loop or dsl.If)",
                    "only a task's own failure can be recorded; run the task after the group's tasks, or make it "
                    "the exit task of a dsl.ExitHandler around the group",
                )
            upstream.append(dep)
        for dep in upstream:
            _check_ignored_upstream(plan, key, plan.tasks[dep])
        for name, source in [*task.parameters.items(), *task.artifacts.items()]:
            _check_default(plan, task, name, source, upstream)
        if upstream:  # without upstream tasks KFP's ignore_upstream_failure has no effect
            plan.ignoring[key] = sorted(upstream)
            for dep in upstream:
                plan.tasks[dep].records_failure = True


def _check_ignored_upstream(plan: PipelinePlan, key: str, upstream: TaskPlan) -> None:
    what = f"ignore_upstream_failure after '{upstream.key}'"
    if upstream.kind == "training":
        raise unsupported(
            key,
            f"{what}, a training task",
            "a TrainingStep has no outputs.json to record its failure in; drop ignore_upstream_failure, or return "
            "the Model from a processing task",
        )
    if upstream.fan_out is not None or upstream.group is not None or upstream.exit_handler is not None:
        raise unsupported(
            key,
            f"{what}, which runs inside a dsl.If, a runtime loop or a dsl.ExitHandler",
            "ignore the failure of plain tasks, or use dsl.ExitHandler around them",
        )
    before = sorted(
        {p.task for s in [*upstream.parameters.values(), *upstream.artifacts.values()] for p in producers(s)}
        | {step for dep in upstream.depends_on for step in plan.step_dependencies(dep)}
    )
    if before:
        raise unsupported(
            key,
            f"{what}, which itself runs after {', '.join(repr(b) for b in before)}",
            "had those failed, '" + upstream.key + "' would never run and SageMaker has no step after a step that "
            "did not run; put the tasks in a dsl.ExitHandler whose exit task is '" + key + "'",
        )
    for other in sorted(plan.tasks.values(), key=lambda t: t.key):
        if other.ignore_upstream_failure:  # reads it at its default when it failed; checked in its own turn
            continue
        reads = {p.task for s in [*other.parameters.values(), *other.artifacts.values()] for p in producers(s)}
        follows = {step for dep in other.depends_on for step in plan.step_dependencies(dep)}
        if upstream.key in reads | follows:
            raise unsupported(
                other.key,
                f"runs after '{upstream.key}', whose failure is recorded for '{key}' (ignore_upstream_failure)",
                f"{_IGNORE_HINT}: read '{upstream.key}' through '{key}', or give this task ignore_upstream_failure too",
            )
    for condition in plan.conditions.values():
        if any(isinstance(r, TaskOutputParam) and r.task == upstream.key for r in condition.refs.values()):
            raise unsupported(
                condition.key,
                f"a dsl.If on '{upstream.key}', whose failure is recorded for '{key}' (ignore_upstream_failure)",
                f"{_IGNORE_HINT}: decide inside '{key}'",
            )


def _check_default(plan: PipelinePlan, task: TaskPlan, name: str, source: Source, upstream: list[str]) -> None:
    """An input from an upstream task must have a default (KFP's SDK checks it too): it is what the task gets
    when that task failed."""
    for producer in producers(source):
        if producer.task not in upstream:
            continue
        if isinstance(source, ImportedArtifact | Collected):
            raise unsupported(
                task.key,
                f"input '{name}' reads '{producer.task}' through a dsl.importer or dsl.Collected "
                "with ignore_upstream_failure",
                "pass the output itself",
            )
        where = "artifacts" if isinstance(source, TaskOutputArtifact) else "parameters"
        declared = task.component.get("inputDefinitions", {}).get(where, {}).get(name, {})
        if not (declared.get("isOptional") or "defaultValue" in declared):
            raise unsupported(
                task.key,
                f"input '{name}' reads '{producer.task}' with ignore_upstream_failure but has no default",
                "give the input a default: it is what the task gets when that task failed",
            )


# KFP's placeholder for the workspace: a volume every task of the run shares (dsl.PipelineConfig(workspace=...)).
WORKSPACE_PLACEHOLDER = "{{$.workspace_path}}"


def _refuse_workspace(spec: dict[str, Any]) -> None:
    """A task handed the workspace's path reads or writes files the other tasks see there; SageMaker steps
    share no volume, so the path would name an empty folder (or none) in each job: refused, not dropped."""
    dags = [("", spec["root"].get("dag", {}))] + [
        (name, component.get("dag", {})) for name, component in spec.get("components", {}).items()
    ]
    for _, dag in dags:
        for task_name, task in sorted(dag.get("tasks", {}).items()):
            if WORKSPACE_PLACEHOLDER in json.dumps(task.get("inputs", {})):
                raise _workspace_refusal(task_name)
    for executor_name, executor in sorted(spec.get("deploymentSpec", {}).get("executors", {}).items()):
        if WORKSPACE_PLACEHOLDER in json.dumps(executor):
            raise _workspace_refusal(executor_name.removeprefix("exec-"))


def _workspace_refusal(task: str) -> UnsupportedFeatureError:
    return unsupported(
        task,
        "a KFP workspace (dsl.WORKSPACE_PATH_PLACEHOLDER: a volume the run's tasks share)",
        "SageMaker steps share no volume; pass the files from task to task as Output[Dataset]/Input[Dataset] "
        "artifacts (kept in S3)",
    )


def plan_pipeline(spec: dict[str, Any]) -> PipelinePlan:
    """Check, flatten and validate a KFP IR dict into a PipelinePlan."""
    from kubesage.ir.schema import check_spec
    from kubesage.runners.sagemaker.inline import Walker

    check_spec(spec)
    _refuse_workspace(spec)
    parameters = _pipeline_parameters(spec)
    walker = Walker(spec)
    scope: dict[str, Source] = {
        name: PipelineParam(name)
        if param.artifact_type is None
        else ImportedArtifact(PipelineParam(name), param.artifact_type, f"pipeline input '{name}'")
        for name, param in parameters.items()
    }
    walker.walk_root(scope)
    info = spec.get("pipelineInfo", {})
    plan = PipelinePlan(
        name=info.get("name", "pipeline"),
        description=info.get("description", ""),
        parameters=parameters,
        tasks=walker.tasks,
        conditions=walker.conditions,
        groups=walker.groups,
        imports=walker.imports,
        notes=walker.notes,
        one_of=walker.one_of_copies,
        exit_handlers=walker.exit_handlers,
    )
    _validate(plan)
    return plan
