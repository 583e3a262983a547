"""dsl.If / Elif / Else evaluated correctly by KFP's local runner: a small patch over kfp.local 2.17.

kfp.local's enhanced orchestrator (`kfp/local/orchestrator/enhanced_dag_orchestrator.py`) evaluates a
condition task's CEL text against the *enclosing* DAG's IOStore, guessing from each channel's name
whether it is a task output (`...-Output` or `...--...`) or a parent input. The compiler names a
NamedTuple field `pipelinechannel--summarize-mean`, which matches neither guess, so the lookup fails,
kfp.local logs `Could not resolve parent input: summarize-mean` and treats the condition as false:
the branch is skipped and the run reported as a success (reproduction: runners/local/UPSTREAM.md).

In the IR the condition reads `inputs.parameter_values[NAME]`, NAME being an input of the condition
task itself, bound like any task input (a task output, a parent input, a constant). So this module:

- makes kfp.local's own evaluator answer "run" for every condition task, and
- wraps the orchestrator's `execute_task`, which receives the task spec: every task's inputs bound to
  an upstream output are checked first (so a missing one names the task and the input), and a task with a trigger
  condition has the inputs its condition reads resolved the way KFP resolves any task input
  (`OrchestratorUtils.make_task_arguments`), and the CEL text evaluated by cel-python with the values
  typed as KFP's backend types them (numbers are protobuf doubles; the compiler writes `int()` casts).
  False: the branch is skipped and reported; an input that cannot be resolved, or a condition that
  does not evaluate to a boolean, fails the run naming the task and the input.

`install()` is idempotent and keeps whatever `execute_task` it finds (another patch may wrap it too).
`evaluated_conditions()` installs it and collects, for one pipeline run, the branches skipped and the
first error; kfp.local swallows exceptions raised inside a ParallelFor iteration, so the error is
handed back from here rather than trusted to propagate.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from kubesage.errors import UnresolvedInputError
from kubesage.ir.parameters import as_cel_value
from kubesage.runners.base import StepEvent
from kubesage.runners.status import StepStatus

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_PATCHED_MARK = "__kubesage_conditions__"


@dataclass(frozen=True)
class SkippedBranch:
    """A condition task whose condition was false: the tasks inside it did not run."""

    task: str
    condition: str
    values: dict[str, Any]


@dataclass
class ConditionLog:
    """What the conditions of one pipeline run did."""

    skipped: list[SkippedBranch] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)
    error: UnresolvedInputError | None = None
    on_skip: Callable[[SkippedBranch], None] | None = None


# The run being executed in this process (kfp.local runs one pipeline at a time per process: its
# configuration is a process-wide singleton). Threads of kfp.local's ParallelFor executor do not
# inherit context variables, so this is a plain global behind a lock.
_current: ConditionLog | None = None


@cache
def _cel_environment() -> Any:
    import celpy

    return celpy.Environment()


@cache
def _program(text: str) -> Any:
    env = _cel_environment()
    return env.program(env.compile(text))


def referenced_inputs(condition: str) -> list[str]:
    """The names a condition reads through `inputs.parameter_values[...]`, in order, each once."""
    names = re.findall(r"inputs\.parameter_values\[\s*['\"]([^'\"]+)['\"]\s*\]", condition)
    return list(dict.fromkeys(names))


def resolve_condition_inputs(task_name: str, task_spec: Any, io_store: Any) -> dict[str, Any]:
    """The values of the inputs `task_spec`'s condition reads, resolved as kfp.local resolves any input."""
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils
    from kfp.pipeline_spec import pipeline_spec_pb2

    condition = task_spec.trigger_policy.condition
    values: dict[str, Any] = {}
    for name in referenced_inputs(condition):
        if name not in task_spec.inputs.parameters:
            declared = ", ".join(sorted(task_spec.inputs.parameters)) or "none"
            raise UnresolvedInputError(
                f"task '{task_name}': its condition {condition!r} reads input '{name}', which the task does "
                f"not declare (declared: {declared}); recompile the pipeline with kfp.compiler"
            )
        single = pipeline_spec_pb2.TaskInputsSpec()
        single.parameters[name].CopyFrom(task_spec.inputs.parameters[name])
        try:
            values[name] = OrchestratorUtils.make_task_arguments(single, io_store)[name]
        except (ValueError, KeyError) as exc:
            raise UnresolvedInputError(
                f"task '{task_name}': input '{name}' of its condition {condition!r} could not be resolved "
                f"({_source(task_spec.inputs.parameters[name])}): {exc}"
            ) from exc
    return values


def _source(spec: Any) -> str:
    """Where an input parameter is bound, in words, for error messages."""
    kind = spec.WhichOneof("kind")
    if kind == "task_output_parameter":
        out = spec.task_output_parameter
        return f"output '{out.output_parameter_key}' of task '{out.producer_task}'"
    if kind == "component_input_parameter":
        return f"parent input '{spec.component_input_parameter}'"
    return str(kind)


def evaluate(task_name: str, condition: str, values: Mapping[str, Any]) -> bool:
    """The condition's truth with `values` as `inputs.parameter_values`, by cel-python."""
    import celpy

    activation = {"inputs": celpy.json_to_cel({"parameter_values": as_cel_value(dict(values))})}
    try:
        result = _program(condition).evaluate(activation)
    except Exception as exc:  # celpy raises its own CELEvalError, CELParseError and TypeErrors
        raise UnresolvedInputError(
            f"task '{task_name}': condition {condition!r} could not be evaluated with {dict(values)}: {exc}"
        ) from exc
    if not isinstance(result, bool):  # celpy's BoolType subclasses int, not bool
        from celpy.celtypes import BoolType

        if not isinstance(result, BoolType):
            raise UnresolvedInputError(
                f"task '{task_name}': condition {condition!r} gave {result!r} with {dict(values)}, not true or false"
            )
    return bool(result)


def check_upstream_inputs(task_name: str, task_spec: Any, io_store: Any) -> None:
    """Every input bound to an upstream task's output has a value, or the error names task and input.

    kfp.local reads these the same way (`IOStore.get_task_output`) and fails with "Tried to get
    output 'x' from task 'y'", which names neither the task that needed it nor its input.
    """
    bindings = [
        (name, spec.task_output_parameter.producer_task, spec.task_output_parameter.output_parameter_key)
        for name, spec in task_spec.inputs.parameters.items()
        if spec.HasField("task_output_parameter")
    ] + [
        (name, spec.task_output_artifact.producer_task, spec.task_output_artifact.output_artifact_key)
        for name, spec in task_spec.inputs.artifacts.items()
        if spec.HasField("task_output_artifact")
    ]
    for name, producer, key in bindings:
        try:
            io_store.get_task_output(producer, key)
        except ValueError as exc:
            raise UnresolvedInputError(
                f"task '{task_name}': input '{name}' (output '{key}' of task '{producer}') could not be resolved: {exc}"
            ) from exc


def _wrap_execute_task(real: Callable[..., Any]) -> Callable[..., Any]:
    def execute_task(*args: Any, **kwargs: Any) -> Any:
        from kfp.local import status

        task_spec = kwargs["task_spec"]
        task_name: str = kwargs["task_name"]
        condition = task_spec.trigger_policy.condition
        log = _current
        try:
            check_upstream_inputs(task_name, task_spec, kwargs["io_store"])
            if not condition:
                return real(*args, **kwargs)
            values = resolve_condition_inputs(task_name, task_spec, kwargs["io_store"])
            taken = evaluate(task_name, condition, values)
        except UnresolvedInputError as exc:
            if log is not None and log.error is None:
                log.error = exc
            raise
        if taken:
            if log is not None:
                log.taken.append(task_name)
            return real(*args, **kwargs)
        skipped = SkippedBranch(task_name, condition, values)
        logger.info("skipping branch %s: condition %s is false with %s", task_name, condition, values)
        if log is not None:
            log.skipped.append(skipped)
            if log.on_skip is not None:
                log.on_skip(skipped)
        # No outputs, as kfp.local's own skip leaves none; a consumer of a skipped branch's output
        # (dsl.OneOf) finds the branch that ran.
        return {}, status.Status.SUCCESS

    setattr(execute_task, _PATCHED_MARK, True)
    execute_task.__wrapped__ = real  # type: ignore[attr-defined]
    return execute_task


def _always_run(condition: str, io_store: Any) -> bool:
    """kfp.local's own evaluation, replaced: the wrapped `execute_task` decides, with the task spec."""
    return True


def install() -> None:
    """Patch kfp.local's enhanced orchestrator in this process (idempotent)."""
    from kfp.local.orchestrator import enhanced_dag_orchestrator as orchestrator

    with _LOCK:
        if getattr(orchestrator.execute_task, _PATCHED_MARK, False):
            return
        orchestrator.ConditionEvaluator.evaluate_condition = staticmethod(_always_run)
        orchestrator.execute_task = _wrap_execute_task(orchestrator.execute_task)


@contextmanager
def evaluated_conditions(on_skip: Callable[[SkippedBranch], None] | None = None) -> Iterator[ConditionLog]:
    """Within the block, kfp.local evaluates conditions correctly; the log collects what they did.

    If the block raises and a condition input could not be resolved, that error is raised (kfp.local
    may have replaced it by "Inner task failed: ..." inside a loop).
    """
    global _current
    install()
    log = ConditionLog(on_skip=on_skip)
    with _LOCK:
        previous, _current = _current, log
    try:
        yield log
    except Exception as exc:
        if log.error is not None and log.error is not exc:
            raise log.error from exc
        raise
    finally:
        with _LOCK:
            _current = previous


def readable(condition: str) -> str:
    """`inputs.parameter_values['pipelinechannel--summarize-mean'] > 2.5` as `summarize-mean > 2.5`."""
    return re.sub(r"inputs\.parameter_values\[\s*['\"](?:pipelinechannel--)?([^'\"]+)['\"]\s*\]", r"\1", condition)


def _shown(value: Any) -> str:
    """A value as the pipeline's author would write it: 1000, not the 1000.0 KFP carries; 6 digits."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.6g}"
    return repr(value)


def skipped_event(branch: SkippedBranch) -> StepEvent:
    """A skipped branch as a step line: `-- condition-1  skipped  summarize-mean > threshold is false (...)`."""
    values = ", ".join(f"{name.removeprefix('pipelinechannel--')}={_shown(v)}" for name, v in branch.values.items())
    return StepEvent(branch.task, StepStatus.SKIPPED, message=f"{readable(branch.condition)} is false ({values})")
