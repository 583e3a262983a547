"""What both SageMaker runners share: compiling once, and handing the MLflow run to the steps.

SageMaker jobs do not inherit the CLI's environment: the hand-off variables travel as pipeline
parameters (`TRACKING_PARAMETERS`), so one pipeline definition serves every run, and the compiler
turns them back into each job's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubesage.errors import RunnerError
from kubesage.ir.inputs import is_data_folder_parameter
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import Runner
from kubesage.runners.sagemaker.client import SageMakerClient
from kubesage.runners.sagemaker.compiler import TRACKING_PARAMETERS, CompiledPipeline, compile_spec
from kubesage.runners.sagemaker.compiler.sharding import shard_plan
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import plan_pipeline
from kubesage.runners.sagemaker.pinning import refuse_pinned
from kubesage.tracking import PipelineRun
from kubesage.tracking.credentials import credential_env_names
from kubesage.util.redact import uri_credentials


def handoff_parameters(tracking: PipelineRun) -> dict[str, str]:
    """The MLflow hand-off as pipeline parameters; refuses a URI that carries any credential."""
    credentials = uri_credentials(tracking.tracking_uri)
    if credentials:
        # Pipeline parameters are returned by DescribePipelineExecution to anyone who can read it.
        raise RunnerError(
            f"MLFLOW_TRACKING_URI carries a credential ({', '.join(credentials)}), and SageMaker pipeline "
            "parameters are not secret. Give the steps MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN "
            "through the job role's secrets and use a plain https://host URI"
        )
    env = tracking.step_env
    return {param: env.get(variable, "") for param, variable in TRACKING_PARAMETERS.items()}


def check_credentials_reach_steps(environ: Mapping[str, str], mlflow_secret: str | None) -> None:
    """MLflow credentials set here must reach the jobs, and only through a secret: refuse to start a run
    whose steps would meet a 401 after minutes of work."""
    names = credential_env_names(environ)
    if names and not mlflow_secret:
        raise RunnerError(
            f"{names[0]} is set, so the MLflow server asks for credentials, and SageMaker jobs get them only from "
            "a Secrets Manager secret: create one (aws secretsmanager create-secret --name kubesage/mlflow "
            '--secret-string file://creds.json, holding {"username": ..., "password": ...}) and pass '
            "--option mlflow_secret=kubesage/mlflow (the job role may read only it: runners/sagemaker/iam/)"
        )


def stage_data_parameters(
    compiled: CompiledPipeline, parameters: Mapping[str, Any], client: SageMakerClient, s3_root: str
) -> dict[str, Any]:
    """Local input files (and capture folders) named by data parameters are uploaded; s3:// URIs pass through."""
    staged = dict(parameters)
    for name in compiled.data_parameters:
        value = staged.get(name, compiled.parameters.get(name))
        if value is None:
            continue
        text = str(value)
        if text.startswith("s3://"):
            continue
        path = Path(text)
        if is_data_folder_parameter(name) and path.is_dir():
            staged[name] = client.upload_folder(path, f"{s3_root}/{compiled.name}/inputs")
            continue
        if not path.is_file():
            raise RunnerError(f"parameter '{name}': '{text}' is neither an s3:// URI nor a local file to upload")
        staged[name] = client.upload_file(path, f"{s3_root}/{compiled.name}/inputs")
    return staged


class SageMakerRunnerBase(Runner):
    """Compile (cached per pipeline: `compile --explain` asks for the report and the file)."""

    options: SageMakerConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._compiled: dict[Path, CompiledPipeline] = {}

    def compile_config(self) -> SageMakerConfig:
        """The compiler's view of the options (runner-only fields dropped)."""
        fields = set(SageMakerConfig.model_fields)
        return SageMakerConfig.model_validate(self.options.model_dump(include=fields))

    def compiled(self, pipeline: PipelineSource) -> CompiledPipeline:
        if pipeline.ir_path not in self._compiled:
            self._compiled[pipeline.ir_path] = compile_spec(
                pipeline.spec, self.compile_config(), pipeline.platform_spec
            )
        return self._compiled[pipeline.ir_path]

    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        self.compiled(pipeline).write(output)
        return output

    def explain(self, pipeline: PipelineSource) -> str:
        return self.compiled(pipeline).explain()

    def check_parameters(self, pipeline: PipelineSource, given: Mapping[str, Any]) -> dict[str, Any]:
        config = self.compile_config()
        refuse_pinned(config.pinned_parameters, given)
        if config.instance_counts:
            # A task that cannot run on its instance count is refused before a run is recorded (issue 20).
            shard_plan(plan_pipeline(pipeline.spec), config)
        return super().check_parameters(pipeline, given)

    def run_parameters(self, parameters: Mapping[str, Any], tracking: PipelineRun) -> dict[str, Any]:
        return {**parameters, **handoff_parameters(tracking)}
