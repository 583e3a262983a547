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
from typing import Any

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker.client import SageMakerClient
from kubesage.runners.sagemaker.compiler import (
    OUTPUTS_FILE,
    OUTPUTS_NAME,
    CompiledPipeline,
    _offline_env,
    build_pipeline,
)
from kubesage.runners.sagemaker.config import SageMakerConfig

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
        execution = run_session.start_pipeline_execution(PipelineName=compiled.name, PipelineParameters=values)
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
