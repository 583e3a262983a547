"""The Runner interface every backend implements, and the shared work around it.

In the spirit of Kedro's AbstractRunner: `Runner.run` does what every backend needs (check the
parameters once, before anything runs; open the MLflow parent run; time the run; turn a failure or
Ctrl-C into a closed parent run with the reason; read the result back from MLflow). A backend fills
in `compile` (what it executes, written to a file) and `_run` (execute or submit, and follow the run
until it ends). Asynchronous backends follow their run inside `_run`. Adding a backend touches no
other backend: a folder under runners/ and one line in `registry.py`.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from kubesage.errors import KubesageError, ParameterError, RunInterruptedError, RunnerError
from kubesage.ir.inputs import check_inputs
from kubesage.ir.parameters import effective_parameters, parameter_specs, resolve_parameters
from kubesage.ir.source import PipelineSource
from kubesage.runners.status import RunStatus, StepStatus, from_mlflow
from kubesage.tracking import (
    PipelineRun,
    failed_step_reasons,
    finish_pipeline_run,
    mlflow_call,
    mlflow_client,
    start_pipeline_run,
    step_name,
    step_runs,
    tag_pipeline_run,
)
from kubesage.tracking.contract import (
    TAG_BACKEND_RUN_ID,
    TAG_MODEL_PACKAGE_ARN,
    TAG_NOT_REGISTERED,
    TAG_REGISTERED_NAME,
    TAG_REGISTERED_VERSION,
)
from kubesage.util.redact import redact_uri


class RunnerOptions(BaseModel):
    """Base of every runner's options: validated once, at the boundary (CLI flags, --option, code).

    A field's `json_schema_extra={"flag": "--image"}` gives it a dedicated CLI flag; every field can
    also be set with `--option NAME=VALUE`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def _renamed_on_exit(value: Any) -> Any:
    """`terminate` was the kfp runner's word for `stop` (before issue 17): accepted, with a warning."""
    if value == "terminate":
        # Explicit location: the caller's frame is pydantic's validator, which means nothing to a user.
        warnings.warn_explicit(
            "--option on_exit=terminate is deprecated; use on_exit=stop (the same behaviour, every runner's word)",
            FutureWarning,
            filename="kubesage",
            lineno=0,
            module=__name__,
        )
        return "stop"
    return value


# What an asynchronous runner does with its backend's run on a timeout or Ctrl-C: stop it, or leave
# it running and say how to follow it. One vocabulary for every runner that has the choice.
OnExit = Annotated[Literal["stop", "detach"], BeforeValidator(_renamed_on_exit)]


@dataclass(frozen=True)
class StepEvent:
    """A step changed state: started, succeeded, failed, skipped (with seconds once it ended)."""

    name: str
    status: StepStatus
    seconds: float | None = None
    message: str | None = None


class Progress:
    """Where runners report what is happening. The default prints nothing; the CLI prints lines."""

    def starting(self, pipeline: str, runner: str) -> None:
        """Every check and the runner's preflight passed: the run is recorded and started next."""

    def info(self, message: str) -> None:
        """A line about the run as a whole (where outputs go, what is being followed)."""

    def step(self, event: StepEvent) -> None:
        """A step started or ended."""

    def log(self, line: str) -> None:
        """One line of a task's own output (executor input, library logs); the CLI shows it with --verbose."""


class CallbackProgress(Progress):
    """Progress as one callable taking a line of text (handy in tests and scripts)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit

    def info(self, message: str) -> None:
        self._emit(message)

    def step(self, event: StepEvent) -> None:
        timing = f" in {event.seconds:.1f} s" if event.seconds is not None else ""
        detail = f": {event.message}" if event.message else ""
        self._emit(f"step {event.name} {event.status}{timing}{detail}")


class StepLedger(Progress):
    """Passes every report on, and counts the tasks that ran and the branches skipped: the summary's numbers.

    Built from the runner's own step events, not from MLflow, so it also counts tasks of a user's
    pipeline that track nothing; a skipped branch is a step event with status "skipped".
    """

    def __init__(self, inner: Progress) -> None:
        self._inner = inner
        self.tasks_run = 0
        # branch -> why; a branch skipped again (another loop iteration) as "condition-3 (2)"
        self.skipped: dict[str, str] = {}

    def starting(self, pipeline: str, runner: str) -> None:
        self._inner.starting(pipeline, runner)

    def info(self, message: str) -> None:
        self._inner.info(message)

    def step(self, event: StepEvent) -> None:
        # Counted per event, not per name: loop iterations and a sub-pipeline used twice repeat names.
        if event.status.ran:
            self.tasks_run += 1
        elif event.status == StepStatus.SKIPPED:
            key, n = event.name, 1
            while key in self.skipped:
                n += 1
                key = f"{event.name} ({n})"
            self.skipped[key] = event.message or ""
        self._inner.step(event)

    def log(self, line: str) -> None:
        self._inner.log(line)


@dataclass
class RunContext:
    """Everything `_run` needs: the pipeline, its checked parameters, the parent run, progress."""

    pipeline: PipelineSource
    parameters: dict[str, Any]
    tracking: PipelineRun
    progress: Progress
    backend_run_id: str = ""

    def record_backend_run(self, backend_run_id: str) -> None:
        """Remember the backend's own id (execution ARN, KFP run id) and tag the parent run with it."""
        self.backend_run_id = backend_run_id
        tag_pipeline_run(self.tracking, {TAG_BACKEND_RUN_ID: backend_run_id})


@dataclass(frozen=True)
class StepSummary:
    name: str
    status: StepStatus
    seconds: float | None


@dataclass(frozen=True)
class RunResult:
    """The same summary whatever the backend; `to_dict` is the `--output json` object."""

    status: RunStatus
    runner: str
    pipeline: str
    mlflow_run_id: str
    backend_id: str
    metrics: dict[str, float]
    registered_model_name: str | None
    registered_model_version: str | None
    not_registered_reason: str | None
    failure: str | None
    wall_seconds: float
    steps: list[StepSummary]
    # step name -> the reason it recorded in MLflow: the same on every backend, whatever the
    # backend's own message (`failure`) looks like.
    failed_steps: dict[str, str] = field(default_factory=dict)
    tracking_uri: str = ""
    # The backend's own view of the tasks: how many ran (succeeded or failed), and the condition
    # branches skipped because their condition was false (branch -> why), which MLflow cannot show.
    tasks_run: int = 0
    skipped_branches: dict[str, str] = field(default_factory=dict)
    # The SageMaker model package the run made, for `kubesage approve` (sagemaker-local; None elsewhere).
    model_package_arn: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runner(ABC):
    """One backend. Subclasses set `name` and `Options`, and implement `compile` and `_run`."""

    name: ClassVar[str]
    Options: ClassVar[type[RunnerOptions]] = RunnerOptions

    def __init__(self, options: RunnerOptions | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        self.options = self.validate_options(options, **overrides)

    @classmethod
    def validate_options(cls, options: RunnerOptions | Mapping[str, Any] | None = None, **overrides: Any) -> Any:
        """The runner's options model from a model, a mapping and/or keyword overrides (None = unset)."""
        values: dict[str, Any] = {}
        if isinstance(options, RunnerOptions):
            values.update(options.model_dump())
        elif options:
            values.update(options)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.Options.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'option'}: {e['msg']}" for e in exc.errors())
            raise ParameterError(f"invalid {cls.name} runner option: {problems}") from None

    # --- what a backend implements -----------------------------------------------------------------
    @abstractmethod
    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        """Write what this backend executes (IR YAML, a SageMaker definition, ...) to `output`."""

    @abstractmethod
    def _run(self, context: RunContext) -> None:
        """Execute (or submit and follow) the run until it ends.

        Raise a KubesageError carrying the failing step's reason if the run failed; raise
        RunInterruptedError if it was stopped on the user's request.
        """

    def preflight(self, pipeline: PipelineSource, parameters: Mapping[str, Any]) -> None:
        """Checks that must pass before anything is recorded (reachable stores, usable inputs)."""
        return None

    def input_endpoint(self) -> str | None:
        """The S3 endpoint input data is read through (a stand-in's URL), for the pre-run input check.

        None: boto3's default (AWS, or $AWS_ENDPOINT_URL). A runner whose options name an S3 endpoint
        overrides this.
        """
        return None

    def explain(self, pipeline: PipelineSource) -> str:
        """How each task and feature maps onto this backend (`kubesage compile --explain`)."""
        raise RunnerError(f"--explain is not available for the {self.name} runner")

    # --- shared -----------------------------------------------------------------------------------
    def check_parameters(self, pipeline: PipelineSource, given: Mapping[str, Any]) -> dict[str, Any]:
        """Typed values for `given`, checked against the pipeline's own inputs."""
        return resolve_parameters(parameter_specs(pipeline.spec), given)

    def run(
        self,
        pipeline: PipelineSource,
        given: Mapping[str, Any],
        progress: Progress | Callable[[str], None] | None = None,
    ) -> RunResult:
        """Check, record, execute and summarise one pipeline run, inside the backend's `session`."""
        inner = progress if isinstance(progress, Progress) else CallbackProgress(progress or (lambda _: None))
        with self.session(inner):
            return self._check_record_execute(pipeline, given, inner)

    def session(self, progress: Progress) -> AbstractContextManager[None]:
        """What the backend holds for the length of one run (the local runner's fork server): opened
        before the parameters are checked, so it warms up meanwhile, and closed however the run ends."""
        return nullcontext()

    def _check_record_execute(self, pipeline: PipelineSource, given: Mapping[str, Any], inner: Progress) -> RunResult:
        reporter = StepLedger(inner)
        parameters = self.check_parameters(pipeline, given)
        # Before the parent run opens, so a missing input leaves nothing behind in MLflow.
        check_inputs(effective_parameters(parameter_specs(pipeline.spec), parameters), self.input_endpoint())
        self.preflight(pipeline, parameters)
        reporter.starting(pipeline.name, self.name)
        logged = effective_parameters(parameter_specs(pipeline.spec), parameters)
        tracking = start_pipeline_run(pipeline.name, self.name, logged)
        context = RunContext(pipeline, parameters, tracking, reporter)
        started = time.perf_counter()
        status, failure = RunStatus.SUCCEEDED, None
        try:
            self._run(context)
        except RunInterruptedError as exc:
            status, failure = RunStatus.INTERRUPTED, str(exc)
        except KubesageError as exc:
            status, failure = RunStatus.FAILED, str(exc)
        except KeyboardInterrupt:
            running = context.backend_run_id or "nothing"
            finish_pipeline_run(
                tracking, RunStatus.INTERRUPTED.mlflow, f"interrupted (Ctrl-C) while {running} was running"
            )
            raise
        except Exception as exc:  # a backend bug still closes the parent run, with the reason
            failure = f"{type(exc).__name__}: {exc}"
            finish_pipeline_run(tracking, RunStatus.FAILED.mlflow, failure)
            raise RunnerError(f"the {self.name} runner failed unexpectedly: {failure}") from exc
        finish_pipeline_run(tracking, status.mlflow, failure)
        result = collect_result(self.name, pipeline, context, time.perf_counter() - started, status, failure)
        return replace(result, tasks_run=reporter.tasks_run, skipped_branches=reporter.skipped)


def collect_result(
    runner: str,
    pipeline: PipelineSource,
    context: RunContext,
    wall_seconds: float,
    status: RunStatus,
    failure: str | None,
) -> RunResult:
    """Read the run's outcome back from MLflow, where every backend's steps recorded it."""
    tracking = context.tracking
    with mlflow_call("read the finished run back", tracking.tracking_uri):
        parent = mlflow_client(tracking.tracking_uri).get_run(tracking.run_id)
    children = step_runs(tracking)
    steps = [
        StepSummary(
            name=step_name(child),
            status=from_mlflow(child.info.status),
            seconds=((child.info.end_time - child.info.start_time) / 1000.0) if child.info.end_time else None,
        )
        for child in children
    ]
    tags = parent.data.tags
    return RunResult(
        status=status,
        runner=runner,
        pipeline=pipeline.name,
        mlflow_run_id=tracking.run_id,
        backend_id=context.backend_run_id,
        metrics=dict(sorted(parent.data.metrics.items())),
        registered_model_name=tags.get(TAG_REGISTERED_NAME),
        registered_model_version=tags.get(TAG_REGISTERED_VERSION),
        not_registered_reason=tags.get(TAG_NOT_REGISTERED) or (f"run failed: {failure}" if failure else None),
        failure=failure,
        wall_seconds=wall_seconds,
        steps=steps,
        failed_steps=failed_step_reasons(children),
        tracking_uri=redact_uri(tracking.tracking_uri),
        model_package_arn=tags.get(TAG_MODEL_PACKAGE_ARN),
    )
