"""Run a compiled pipeline through the SageMaker SDK's local mode (Docker), for CI and laptops.

The SDK v3 splits local mode in two: `sagemaker.core.workflow.pipeline_context.LocalPipelineSession`
defers the step arguments while the steps are built, and `sagemaker.mlops.local.LocalPipelineSession`
creates and executes the pipeline (each job a `docker-compose up` of the configured image). Both
talk to S3 for inputs, outputs and PropertyFiles, so `s3_endpoint_url` can point them at moto.

Local mode executes only Training, Processing, Transform, CreateModel, Fail and Condition steps:
the compiler is told (`local_mode=True`) to leave out the RegisterModel step; the register task's
own MLflow registration still runs inside its container.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesage.errors import RunnerError
from kubesage.pipeline_source import PipelineSource
from kubesage.runners.base import ProgressCallback, RunHandle, Runner
from kubesage.runners.sagemaker.client import SageMakerClient
from kubesage.runners.sagemaker.compiler import (
    OUTPUTS_FILE,
    OUTPUTS_NAME,
    CompiledPipeline,
    _offline_env,
    build_pipeline,
)
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.tracking import PipelineRun

LOCAL_INSTANCE = "local"


@dataclass
class LocalStep:
    name: str
    status: str
    failure: str | None


@dataclass
class LocalExecution:
    """What a local-mode execution did, with every processing step's outputs.json read back."""

    execution_id: str
    status: str
    failure: str | None
    steps: list[LocalStep]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


def local_config(config: SageMakerConfig) -> SageMakerConfig:
    """The same settings, targeting local mode: `local` instances and no RegisterModel step."""
    return config.model_copy(update={"local_mode": True, "default_instance_type": LOCAL_INSTANCE, "instance_types": {}})


def _local_mode_containers() -> set[str]:
    """Ids of local-mode job containers (`<project>-algo-<n>-<id>`), running or exited."""
    import subprocess

    try:
        out = subprocess.run(
            ["docker", "ps", "-a", "--filter", "name=-algo-", "--format", "{{.ID}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(out.split())


def _remove_containers(ids: set[str]) -> None:
    """The SDK's `docker-compose up` leaves its exited job containers behind; remove this run's."""
    import subprocess

    if ids:
        subprocess.run(["docker", "rm", *sorted(ids)], capture_output=True, timeout=60, check=False)


def run_local(
    spec: dict[str, Any],
    config: SageMakerConfig,
    parameters: Mapping[str, Any],
    boto_session: Any,
    s3_endpoint_url: str | None = None,
) -> tuple[CompiledPipeline, LocalExecution]:
    """Compile `spec` for local mode, upload its task specs, execute it with Docker, collect outputs."""
    config = local_config(config)
    client = SageMakerClient(
        s3=boto_session.client("s3", endpoint_url=s3_endpoint_url),
        sagemaker=None,
    )
    with _offline_env(config.region):
        from sagemaker.core.workflow.pipeline_context import LocalPipelineSession as StepSession
        from sagemaker.mlops.local import LocalPipelineSession

        step_session = StepSession(
            boto_session=boto_session, default_bucket=config.bucket, s3_endpoint_url=s3_endpoint_url
        )
        pipeline, compiled = build_pipeline(spec, config, step_session)
        client.upload_assets(compiled.assets)
        run_session = LocalPipelineSession(
            boto_session=boto_session, default_bucket=config.bucket, s3_endpoint_url=s3_endpoint_url
        )
        pipeline.sagemaker_session = run_session
        run_session.create_pipeline(pipeline, f"kubesage local run of {compiled.name}")
        from kubesage.runners.sagemaker.runner import stage_data_parameters

        staged = stage_data_parameters(compiled, parameters, client, config.s3_root())
        values = {k: v for k, v in staged.items() if v is not None}
        before = _local_mode_containers()
        try:
            execution = run_session.start_pipeline_execution(PipelineName=compiled.name, PipelineParameters=values)
        finally:
            _remove_containers(_local_mode_containers() - before)
        described = execution.describe()
        steps = [
            LocalStep(s["StepName"], s["StepStatus"], s.get("FailureReason"))
            for s in execution.list_steps()["PipelineExecutionSteps"]
        ]
    result = LocalExecution(
        execution_id=described["PipelineExecutionArn"],
        status=described["PipelineExecutionStatus"],
        failure=described.get("FailureReason"),
        steps=steps,
    )
    for step in steps:
        if step.status == "Succeeded" and step.name in _processing_tasks(compiled):
            uri = (
                f"{config.s3_root()}/{compiled.name}/runs/{result.execution_id}/{step.name}/"
                f"{OUTPUTS_NAME}/{OUTPUTS_FILE}"
            )
            try:
                result.outputs[step.name] = client.read_json(uri)
            except RunnerError:
                result.outputs[step.name] = {}
    return compiled, result


def _processing_tasks(compiled: CompiledPipeline) -> set[str]:
    found: set[str] = set()

    def walk(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            if step["Type"] == "Processing":
                found.add(step["Name"])
            if step["Type"] == "Condition":
                walk(step["Arguments"].get("IfSteps", []))
                walk(step["Arguments"].get("ElseSteps", []))

    walk(compiled.definition["Steps"])
    return found


def describe(result: LocalExecution) -> str:
    lines = [f"local execution {result.execution_id}: {result.status}"]
    lines += [f"  {s.name}: {s.status}" + (f" ({s.failure})" if s.failure else "") for s in result.steps]
    return "\n".join(lines) + "\n" + json.dumps(result.outputs, indent=2, sort_keys=True)


def _reachable_from_containers(uri: str) -> bool:
    """Local-mode containers sit on their own Docker network: host loopback and files are out of reach."""
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    return parsed.scheme in ("http", "https") and parsed.hostname not in (None, "localhost", "127.0.0.1", "::1")


def numeric_metrics(outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Every Metrics value the steps logged (`outputs.json` artifact metadata), for the parent run."""
    found: dict[str, float] = {}
    for task in sorted(outputs):
        for metadata in outputs[task].get("artifacts", {}).values():
            for key, value in metadata.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    found[key] = float(value)
    return found


class SageMakerLocalRunner(Runner):
    """`kubesage run PIPELINE --runner sagemaker-local`: the compiled pipeline in SDK local mode."""

    name = "sagemaker-local"

    def __init__(
        self, config: SageMakerConfig | None = None, s3_endpoint_url: str | None = None, **settings: Any
    ) -> None:
        settings = {k: v for k, v in settings.items() if v is not None}
        base = config or SageMakerConfig()
        self.config = SageMakerConfig.model_validate({**base.model_dump(), **settings}) if settings else base
        self.s3_endpoint_url = s3_endpoint_url

    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        from kubesage.runners.sagemaker.compiler import compile_spec

        compile_spec(pipeline.spec, local_config(self.config)).write(output)
        return output

    def submit(self, pipeline: PipelineSource, parameters: Mapping[str, Any], tracking: PipelineRun) -> RunHandle:
        # Local mode runs synchronously: `wait` does the work.
        return RunHandle(
            pipeline_run_id=tracking.run_id,
            backend_id="",
            pipeline=pipeline,
            parameters=dict(parameters),
            tracking=tracking,
        )

    def wait(self, handle: RunHandle, progress: ProgressCallback) -> None:
        import boto3

        from kubesage.runners.sagemaker.compiler import TRACKING_PARAMETERS

        parameters = dict(handle.parameters)
        tracked = _reachable_from_containers(handle.tracking.tracking_uri)
        if tracked:
            env = handle.tracking.step_env
            parameters.update({p: env.get(v, "") for p, v in TRACKING_PARAMETERS.items()})
        else:
            progress(
                f"MLflow at {handle.tracking.tracking_uri} is not reachable from local-mode containers: "
                "steps run untracked; their metrics are copied to the parent run afterwards"
            )
        progress(f"running {handle.pipeline.name} in SageMaker local mode with {self.config.image_uri}")
        boto_session = boto3.Session(region_name=self.config.region)
        _, result = run_local(handle.pipeline.spec, self.config, parameters, boto_session, self.s3_endpoint_url)
        handle.backend_id = result.execution_id
        for step in result.steps:
            progress(f"step {step.name}: {step.status}" + (f" ({step.failure})" if step.failure else ""))
        if not tracked:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=handle.tracking.tracking_uri)
            for key, value in numeric_metrics(result.outputs).items():
                client.log_metric(handle.tracking.run_id, key, value)
        if not result.succeeded:
            raise RunnerError(f"SageMaker local-mode execution {result.execution_id} failed: {result.failure}")
