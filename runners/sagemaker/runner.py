"""The SageMaker backend: compile offline, upload the task specs and inputs, upsert, start, follow.

`submit` compiles the IR (no AWS), uploads the task specs and any local input files to S3, creates
or updates the pipeline, makes sure the model package group exists, and starts an execution with
the run's parameters plus the MLflow parent run, so every step joins it. `wait` polls the
execution and reports step status changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubesage.errors import ParameterError, RunnerError
from kubesage.pipeline_source import PipelineSource
from kubesage.runners.base import ProgressCallback, RunHandle, Runner
from kubesage.runners.sagemaker.client import SageMakerClient
from kubesage.runners.sagemaker.compiler import TRACKING_PARAMETERS, CompiledPipeline, compile_spec
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.tracking import PipelineRun

TAG_EXECUTION_ARN = "kubesage.sagemaker.execution_arn"


def parameter_text(value: Any) -> str:
    """SageMaker takes every parameter value as a string; booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stage_data_parameters(
    compiled: CompiledPipeline, parameters: Mapping[str, Any], client: SageMakerClient, s3_root: str
) -> dict[str, Any]:
    """Local input files named by data parameters are uploaded; s3:// URIs pass through."""
    staged = dict(parameters)
    for name in compiled.data_parameters:
        value = staged.get(name, compiled.parameters.get(name))
        if value is None:
            continue
        text = str(value)
        if text.startswith("s3://"):
            continue
        path = Path(text)
        if not path.is_file():
            raise RunnerError(f"parameter '{name}': '{text}' is neither an s3:// URI nor a local file to upload")
        staged[name] = client.upload_file(path, f"{s3_root}/{compiled.name}/inputs")
    return staged


def execution_parameters(
    compiled: CompiledPipeline, parameters: Mapping[str, Any], tracking: PipelineRun | None
) -> dict[str, str]:
    pinned = sorted(set(parameters) & set(compiled.pinned))
    if pinned:
        raise ParameterError(
            f"parameter(s) {', '.join(pinned)} are pinned in the compiled pipeline "
            f"({', '.join(f'{n}={compiled.pinned[n]!r}' for n in pinned)}); drop them from --param, or "
            "unpin them in the SageMaker config to make them execution parameters again"
        )
    values = {name: parameter_text(v) for name, v in parameters.items()}
    if tracking is not None and urlsplit(tracking.tracking_uri).password:
        # Pipeline parameters are returned by DescribePipelineExecution to anyone who can read it.
        raise RunnerError(
            "MLFLOW_TRACKING_URI carries a password; SageMaker pipeline parameters are not secret. "
            "Give the steps MLFLOW_TRACKING_USERNAME/PASSWORD through the execution role's secrets instead"
        )
    if tracking is not None:
        env = tracking.step_env
        for param, variable in TRACKING_PARAMETERS.items():
            values[param] = env.get(variable, "")
    return values


class SageMakerRunner(Runner):
    """Runs the compiled pipeline on SageMaker Pipelines (or any endpoint speaking its API)."""

    name = "sagemaker"

    def __init__(
        self,
        config: SageMakerConfig | None = None,
        endpoint_url: str | None = None,
        poll_seconds: float = 15.0,
        timeout_seconds: float = 6 * 3600,
        **settings: Any,
    ) -> None:
        # CLI flags (image_uri, role_arn, bucket, region, ...) override the config; None means unset.
        settings = {k: v for k, v in settings.items() if v is not None}
        base = config or SageMakerConfig()
        self.config = SageMakerConfig.model_validate({**base.model_dump(), **settings}) if settings else base
        self.endpoint_url = endpoint_url
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self._client: SageMakerClient | None = None
        self._compiled: dict[Path, CompiledPipeline] = {}

    @property
    def client(self) -> SageMakerClient:
        if self._client is None:
            self._client = SageMakerClient.create(self.config.region, self.endpoint_url)
        return self._client

    def _compile(self, pipeline: PipelineSource) -> CompiledPipeline:
        """Compile once per pipeline: `compile --explain` asks for both the report and the file."""
        if pipeline.ir_path not in self._compiled:
            self._compiled[pipeline.ir_path] = compile_spec(pipeline.spec, self.config)
        return self._compiled[pipeline.ir_path]

    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        self._compile(pipeline).write(output)
        return output

    def explain(self, pipeline: PipelineSource) -> str:
        return self._compile(pipeline).explain()

    def submit(self, pipeline: PipelineSource, parameters: Mapping[str, Any], tracking: PipelineRun) -> RunHandle:
        compiled = self._compile(pipeline)
        client = self.client
        client.upload_assets(compiled.assets)
        staged = stage_data_parameters(compiled, parameters, client, self.config.s3_root())
        pipeline_arn = client.upsert_pipeline(
            compiled.name, compiled.definition_json(), self.config.role_arn, pipeline.description
        )
        if compiled.model_package_group:
            client.ensure_model_package_group(compiled.model_package_group)
        execution_arn = client.start_execution(compiled.name, execution_parameters(compiled, staged, tracking))
        _tag_parent_run(tracking, execution_arn)
        return RunHandle(
            pipeline_run_id=tracking.run_id,
            backend_id=execution_arn,
            pipeline=pipeline,
            parameters=dict(staged),
            tracking=tracking,
            details={"pipeline_arn": pipeline_arn, "pipeline_name": compiled.name},
        )

    def wait(self, handle: RunHandle, progress: ProgressCallback) -> None:
        progress(f"following SageMaker pipeline execution {handle.backend_id}")
        described = self.client.wait(handle.backend_id, progress, self.poll_seconds, self.timeout_seconds)
        status = described["PipelineExecutionStatus"]
        handle.details["status"] = status
        if status != "Succeeded":
            reason = described.get("FailureReason") or "see the failed step in SageMaker Studio"
            raise RunnerError(f"SageMaker pipeline execution {handle.backend_id} ended {status}: {reason}")


def _tag_parent_run(tracking: PipelineRun, execution_arn: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=tracking.tracking_uri).set_tag(tracking.run_id, TAG_EXECUTION_ARN, execution_arn)
