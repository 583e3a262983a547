"""dsl.ExitHandler -> its tasks record a failure instead of failing, the exit task runs after them all,
then a ConditionStep fails the execution (FailStep) if any of them did not succeed.

SageMaker runs a step only when every step it depends on succeeded, and has no step that runs after
a failure. So the tasks inside the handler run with `--continue-on-failure`: when the component fails,
the shim writes stand-in outputs and `"status": "failed"` to outputs.json and ends the job
successfully; a later task of the handler reading it (`--upstream-status`) is skipped the same way.
The exit task therefore still runs, and the execution still ends Failed, naming each task's status.
A job that SageMaker itself fails (capacity, out of memory, a stop) still ends the run without the
exit task: that is where SageMaker does not allow more.
"""

from __future__ import annotations

from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.compiler.order import data_producers
from kubesage.runners.sagemaker.inline import step_name
from kubesage.runners.sagemaker.ir import PipelinePlan, TaskPlan, producers

CONTINUE_FLAG = "--continue-on-failure"
UPSTREAM_FLAG = "--upstream-status"
FINAL_STATUS_FLAG = "--final-status"
HANDLER_STATUS_FLAG = "--handler-status"
UPSTREAM_COMPLETED_FLAG = "--upstream-completed"
INPUT_FROM_FLAG = "--input-from"
SUCCEEDED = "succeeded"


def upstream_in_handler(plan: PipelinePlan, task: TaskPlan) -> list[str]:
    """The tasks of the same handler that `task` reads or follows: it is skipped if one did not succeed."""
    if task.exit_handler is None:
        return []
    found = data_producers(task) | {step for dep in task.depends_on for step in plan.step_dependencies(dep)}
    return sorted(k for k in found if k in plan.tasks and plan.tasks[k].exit_handler == task.exit_handler)


def status_of(ctx: BuildContext, task: str) -> Any:
    from sagemaker.core.workflow.functions import JsonGet

    return JsonGet(step_name=task, property_file=ctx.property_files[task], json_path="status")


def handler_arguments(ctx: BuildContext, task: TaskPlan) -> list[Any]:
    if task.exit_handler is None and not task.records_failure:
        return ignore_arguments(ctx, task)
    args: list[Any] = [CONTINUE_FLAG]
    for upstream in upstream_in_handler(ctx.plan, task):
        args += [UPSTREAM_FLAG, upstream, status_of(ctx, upstream).to_string()]
    return args


def ignore_arguments(ctx: BuildContext, task: TaskPlan) -> list[Any]:
    """A task with ignore_upstream_failure: each upstream task's recorded status, and which inputs it gave;
    the shim hands an input whose upstream did not succeed its default, as KFP does."""
    upstream = ctx.plan.ignoring.get(task.key, [])
    args: list[Any] = []
    for member in upstream:
        args += [UPSTREAM_COMPLETED_FLAG, member, status_of(ctx, member).to_string()]
    for name, source in sorted([*task.parameters.items(), *task.artifacts.items()]):
        for producer in sorted({p.task for p in producers(source)} & set(upstream)):
            args += [INPUT_FROM_FLAG, name, producer]
    return args


def final_status_arguments(ctx: BuildContext, task: str, parameter: str, handler: str) -> list[Any]:
    """The exit task's dsl.PipelineTaskFinalStatus `parameter`: the handler's name, then each of its
    tasks with the status it recorded; the shim assembles KFP's status struct from them."""
    if handler in ctx.plan.ignoring.get(task, []):
        # ignore_upstream_failure: KFP names the one upstream task as the status's producer
        status = status_of(ctx, handler).to_string()
        return [FINAL_STATUS_FLAG, parameter, handler, HANDLER_STATUS_FLAG, handler, status]
    exit_task = ctx.plan.exit_handlers.get(handler)
    if exit_task is None or task not in ctx.plan.tasks_in(exit_task):  # the exit task, or a task of the exit pipeline
        raise UnsupportedFeatureError(
            f"task '{task}': reads dsl.PipelineTaskFinalStatus of '{handler}' but is not its exit task; "
            "read the status in the exit task of that dsl.ExitHandler"
        )
    args: list[Any] = [FINAL_STATUS_FLAG, parameter, handler]
    for member in ctx.plan.handler_tasks(handler):
        args += [HANDLER_STATUS_FLAG, member, status_of(ctx, member).to_string()]
    return args


def status_steps(ctx: BuildContext) -> list[Any]:
    """Per handler: a ConditionStep after the exit task whose else branch is a FailStep naming each status."""
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep

    steps = []
    for handler, exit_task in sorted(ctx.plan.exit_handlers.items()):
        tasks = ctx.plan.handler_tasks(handler)
        if not tasks or not exit_task:
            continue
        statuses: list[Any] = []
        for task in tasks:
            statuses += [f"{task}:", status_of(ctx, task)]
        fail = FailStep(
            name=f"{handler}-failed",
            error_message=Join(
                on=" ", values=[f"tasks inside dsl.ExitHandler '{handler}' did not all succeed:", *statuses]
            ),
        )
        steps.append(
            ConditionStep(
                name=f"{handler}-status",
                conditions=[ConditionEquals(left=status_of(ctx, task), right=SUCCEEDED) for task in tasks],
                if_steps=[],
                else_steps=[fail],
                # the exit task's step, or every step of a pipeline as the exit task (a dsl.If by its ConditionStep)
                depends_on=ctx.plan.step_dependencies(exit_task),
            )
        )
    return steps


def ignore_status_steps(ctx: BuildContext) -> list[Any]:
    """Per task with ignore_upstream_failure: a ConditionStep after it (and whatever runs after it) whose else
    branch is a FailStep naming each upstream status: as on KFP, the run fails when a task failed."""
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep

    steps = []
    for task, upstream in sorted(ctx.plan.ignoring.items()):
        statuses: list[Any] = []
        for member in upstream:
            statuses += [f"{member}:", status_of(ctx, member)]
        fail = FailStep(
            name=ignore_step_names(task)[1],
            error_message=Join(
                on=" ", values=[f"tasks before '{task}' (ignore_upstream_failure) did not all succeed:", *statuses]
            ),
        )
        steps.append(
            ConditionStep(
                name=ignore_step_names(task)[0],
                conditions=[ConditionEquals(left=status_of(ctx, member), right=SUCCEEDED) for member in upstream],
                if_steps=[],
                else_steps=[fail],
                depends_on=_after(ctx.plan, task),
            )
        )
    return steps


def ignore_step_names(task: str) -> tuple[str, str]:
    """The status ConditionStep and FailStep after a task with ignore_upstream_failure."""
    return step_name(f"{task}-upstream-status"), step_name(f"{task}-upstream-failed")


def _after(plan: PipelinePlan, task: str) -> list[str]:
    """`task` and every step that runs after it (a task inside a dsl.If by its outermost ConditionStep): the
    execution fails only once they are done, as KFP's run does."""
    found = {task}
    changed = True
    while changed:
        changed = False
        for other in plan.tasks.values():
            before = data_producers(other) | {s for dep in other.depends_on for s in plan.step_dependencies(dep)}
            if other.key not in found and before & found:
                found.add(other.key)
                changed = True
    steps = set()
    for key in found:
        group = plan.tasks[key].group
        while group is not None and plan.conditions[group].group is not None:
            group = plan.conditions[group].group
        steps.add(group or key)
    return sorted(steps)


def ignore_line(plan: PipelinePlan, task: str) -> str:
    upstream = plan.ignoring[task]
    condition, fail = ignore_step_names(task)
    return (
        f"task '{task}' ignores upstream failure -> its upstream tasks {upstream} record a failure in outputs.json "
        f"instead of failing (no caching); '{task}' runs after them, and an input from one that did not succeed "
        f"takes its default, as on KFP; then ConditionStep '{condition}' ends the execution with FailStep "
        f"'{fail}' if any did not succeed. A job SageMaker itself fails (capacity, out of memory, a stop) still "
        f"ends the run without '{task}'"
    )


def handler_line(plan: PipelinePlan, handler: str) -> str:
    tasks = plan.handler_tasks(handler)
    exit_task = plan.exit_handlers[handler]
    runs = (
        f"exit task '{exit_task}' runs after them all"
        if exit_task in plan.tasks
        else f"exit pipeline '{exit_task}' is inlined and each of its steps {plan.tasks_in(exit_task)} runs after them "
        "all (those reading dsl.PipelineTaskFinalStatus get the handler's)"
    )
    return (
        f"dsl.ExitHandler '{handler}' -> its tasks {tasks} record a failure in outputs.json instead of failing (a "
        f"later task of the handler that reads one is skipped); {runs}; then ConditionStep '{handler}-status' "
        f"(after {plan.step_dependencies(exit_task)}) ends the execution with FailStep "
        f"'{handler}-failed' if any did not succeed. A job SageMaker itself fails (capacity, out of memory, a "
        "stop) still ends the run without the exit task"
    )
