"""One status vocabulary for every runner, from the backend's report to the `--output json` object.

Each backend speaks its own: KFP task states (SUCCEEDED, CANCELED), SageMaker step statuses
(Executing, Stopped), KFP's local runner (SUCCESS, FAILURE), MLflow run statuses (FINISHED, KILLED).
Each runner maps its backend's words once, at its edge, with the `from_*` functions below, so the
console lines, the summary and the JSON use these values whatever ran the pipeline.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """How a whole pipeline run ended (`RunResult.status`)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped on the user's request: Ctrl-C, a timeout, canceled on the backend

    @property
    def mlflow(self) -> str:
        """The MLflow status the parent run is closed with."""
        return _RUN_TO_MLFLOW[self]


_RUN_TO_MLFLOW = {RunStatus.SUCCEEDED: "FINISHED", RunStatus.FAILED: "FAILED", RunStatus.INTERRUPTED: "KILLED"}


class StepStatus(StrEnum):
    """A step's state: in progress events (`StepEvent.status`) and in the result (`steps[].status`)."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"  # stopped or canceled from outside before it finished
    SKIPPED = "skipped"  # a condition branch not taken
    CACHED = "cached"  # an earlier run's outputs reused

    @property
    def ran(self) -> bool:
        """The step's own code ran (as opposed to started, skipped, cached, stopping)."""
        return self in (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.STOPPED)


# MLflow run statuses (a step's nested run) -> StepStatus. RUNNING or SCHEDULED after the pipeline
# ended means the step started and never closed its run. The other tables leave out the states not
# reported as progress (KFP's PENDING, PAUSED): `from_kfp` and `from_sagemaker` answer None for them.
_FROM_MLFLOW = {
    "FINISHED": StepStatus.SUCCEEDED,
    "FAILED": StepStatus.FAILED,
    "KILLED": StepStatus.STOPPED,
    "RUNNING": StepStatus.STARTED,
    "SCHEDULED": StepStatus.STARTED,
}
# KFP v2beta1 task states (RuntimeState); PENDING, PAUSED and the like are not reported.
_FROM_KFP = {
    "RUNNING": StepStatus.STARTED,
    "SUCCEEDED": StepStatus.SUCCEEDED,
    "FAILED": StepStatus.FAILED,
    "CANCELING": StepStatus.STOPPING,
    "CANCELED": StepStatus.STOPPED,
    "SKIPPED": StepStatus.SKIPPED,
}
# SageMaker's StepStatus (ListPipelineExecutionSteps; the SDK's local mode answers the same words).
_FROM_SAGEMAKER = {
    "Starting": StepStatus.STARTED,
    "Executing": StepStatus.STARTED,
    "Succeeded": StepStatus.SUCCEEDED,
    "Failed": StepStatus.FAILED,
    "Stopping": StepStatus.STOPPING,
    "Stopped": StepStatus.STOPPED,
}
# KFP's local runner logs "Task 'x' finished with status SUCCESS|FAILURE".
_FROM_KFP_LOCAL = {"SUCCESS": StepStatus.SUCCEEDED, "FAILURE": StepStatus.FAILED}


def from_mlflow(status: str) -> StepStatus:
    return _FROM_MLFLOW.get(status, StepStatus.STARTED)


def statuses_to_report(previous: StepStatus | None, status: StepStatus) -> list[StepStatus]:
    """What a follower polling a cluster reports when a step went from `previous` (None: not seen
    before) to `status`. A step that started and ended between two polls is first seen succeeded or
    failed: its start is reported too, so that every step that ran shows a start line and an end
    line, on every runner."""
    if previous == status:
        return []
    if previous is None and status in (StepStatus.SUCCEEDED, StepStatus.FAILED):
        return [StepStatus.STARTED, status]
    return [status]


def from_kfp(state: str) -> StepStatus | None:
    return _FROM_KFP.get(state)


def from_sagemaker(status: str) -> StepStatus | None:
    return _FROM_SAGEMAKER.get(status)


def from_kfp_local(status: str) -> StepStatus | None:
    return _FROM_KFP_LOCAL.get(status)
