"""The Runner interface every backend implements, and the shared work around it.

`Runner.run` does what every backend needs (check parameters before anything runs, open the MLflow
parent run, follow the run, close the parent run, collect the result); a backend fills in
`compile`, `submit` and `wait`. Adding a backend touches no other backend: see `registry.py`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from kubesage.errors import KubesageError, RunnerError
from kubesage.parameters import effective_parameters, parameter_specs, resolve_parameters
from kubesage.pipeline_source import PipelineSource
from kubesage.tracking import PipelineRun, finish_pipeline_run, start_pipeline_run

ProgressCallback = Callable[[str], None]


@dataclass
class RunHandle:
    """What `submit` returns: enough for `wait` to follow the run."""

    pipeline_run_id: str
    backend_id: str
    pipeline: PipelineSource
    parameters: dict[str, Any]
    tracking: PipelineRun
    started_at: float = field(default_factory=time.time)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepSummary:
    name: str
    status: str
    seconds: float | None


@dataclass(frozen=True)
class RunResult:
    """The same summary whatever the backend; `to_dict` is the `--output json` object."""

    status: str  # "succeeded" | "failed"
    runner: str
    pipeline: str
    pipeline_run_id: str
    mlflow_run_id: str
    backend_id: str
    metrics: dict[str, float]
    registered_model_name: str | None
    registered_model_version: str | None
    not_registered_reason: str | None
    failure: str | None
    wall_seconds: float
    steps: list[StepSummary]

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runner(ABC):
    """One backend. Subclasses implement compile, submit and wait; `run` is shared."""

    name: ClassVar[str]

    @abstractmethod
    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        """Write what this backend executes (IR YAML, a SageMaker definition, ...) to `output`."""

    @abstractmethod
    def submit(self, pipeline: PipelineSource, parameters: Mapping[str, Any], tracking: PipelineRun) -> RunHandle:
        """Start a run with checked, typed parameters; the steps join `tracking`'s parent run."""

    @abstractmethod
    def wait(self, handle: RunHandle, progress: ProgressCallback) -> None:
        """Block until the run ends; raise KubesageError with the step's reason if it failed."""

    def explain(self, pipeline: PipelineSource) -> str:
        """How each task and feature maps onto this backend (`kubesage compile --explain`)."""
        raise RunnerError(f"--explain is not available for the {self.name} target")

    def check_parameters(self, pipeline: PipelineSource, given: Mapping[str, Any]) -> dict[str, Any]:
        specs = parameter_specs(pipeline.spec)
        return resolve_parameters(specs, given)

    def run(
        self,
        pipeline: PipelineSource,
        given: Mapping[str, Any],
        progress: ProgressCallback = lambda _: None,
    ) -> RunResult:
        parameters = self.check_parameters(pipeline, given)
        logged = effective_parameters(parameter_specs(pipeline.spec), parameters)
        tracking = start_pipeline_run(pipeline.name, self.name, logged)
        started = time.perf_counter()
        failure: str | None = None
        handle: RunHandle | None = None
        try:
            handle = self.submit(pipeline, parameters, tracking)
            self.wait(handle, progress)
        except KubesageError as exc:
            failure = str(exc)
        except Exception as exc:  # a backend bug still closes the parent run
            failure = f"{type(exc).__name__}: {exc}"
            finish_pipeline_run(tracking, succeeded=False, failure=failure)
            raise RunnerError(f"the {self.name} runner failed unexpectedly: {failure}") from exc
        finish_pipeline_run(tracking, succeeded=failure is None, failure=failure)
        return collect_result(
            runner=self.name,
            pipeline=pipeline,
            tracking=tracking,
            backend_id=handle.backend_id if handle else "",
            wall_seconds=time.perf_counter() - started,
            failure=failure,
        )


def collect_result(
    runner: str,
    pipeline: PipelineSource,
    tracking: PipelineRun,
    backend_id: str,
    wall_seconds: float,
    failure: str | None,
) -> RunResult:
    """Read the run's outcome back from MLflow, where every backend's steps recorded it."""
    from mlflow import MlflowClient

    from kubesage import tracking as t

    client = MlflowClient(tracking_uri=tracking.tracking_uri)
    parent = client.get_run(tracking.run_id)
    children = client.search_runs(
        [tracking.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{tracking.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    steps = [
        StepSummary(
            name=child.data.tags.get(t.TAG_STEP, child.info.run_name or "?"),
            status=child.info.status,
            seconds=((child.info.end_time - child.info.start_time) / 1000.0) if child.info.end_time else None,
        )
        for child in children
    ]
    tags = parent.data.tags
    return RunResult(
        status="failed" if failure else "succeeded",
        runner=runner,
        pipeline=pipeline.name,
        pipeline_run_id=tracking.run_id,
        mlflow_run_id=tracking.run_id,
        backend_id=backend_id,
        metrics=dict(sorted(parent.data.metrics.items())),
        registered_model_name=tags.get(t.TAG_REGISTERED_NAME),
        registered_model_version=tags.get(t.TAG_REGISTERED_VERSION),
        not_registered_reason=tags.get(t.TAG_NOT_REGISTERED) or (f"run failed: {failure}" if failure else None),
        failure=failure,
        wall_seconds=wall_seconds,
        steps=steps,
    )
