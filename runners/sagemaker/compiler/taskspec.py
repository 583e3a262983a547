"""What the shim gets in a job: the task spec (uploaded to S3), its command line and its environment.

The component's command and constants travel in the per-task JSON spec because SageMaker caps each
container argument at 256 characters and lightweight components embed their source in the command.
Only runtime values (parameters, upstream outputs) go on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesage.runners.sagemaker import pod_fields, secret_files
from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.compiler.exit_handler import final_status_arguments, handler_arguments
from kubesage.runners.sagemaker.compiler.fanout import collected_artifact_file, fan_out_spec
from kubesage.runners.sagemaker.compiler.layout import MODEL_DIR, OUTPUTS_FILE, OUTPUTS_NAME, SPEC_CHANNEL, data_channel
from kubesage.runners.sagemaker.compiler.parameters import TRACKING_PARAMETERS
from kubesage.runners.sagemaker.fetch import fetched_name
from kubesage.runners.sagemaker.integrity import DIGEST_FLAG, spec_bytes, spec_digest
from kubesage.runners.sagemaker.ir import Collected, Constant, FinalStatus, ImportedArtifact, PipelineParam, TaskPlan
from kubesage.runners.sagemaker.secret_env import ENV_SECRET_ENV, encode, mlflow_secret_env
from kubesage.tracking.contract import ENV_RUNNER


@dataclass(frozen=True)
class SpecAsset:
    """A task spec as uploaded: its S3 URI, its bytes, and the sha256 the definition pins."""

    uri: str
    body: bytes
    digest: str


def task_spec(ctx: BuildContext, task: TaskPlan, in_root: str, out_root: str) -> dict[str, Any]:
    """What the shim needs besides runtime values: the component and where things are."""
    inputs: dict[str, dict[str, Any]] = {}
    for name, source in task.artifacts.items():
        gathered: str | None = None
        fetch: dict[str, dict[str, Any]] = {}
        if isinstance(source, ImportedArtifact):
            # SageMaker downloads an S3 object into the channel under its base name; "" = what arrived
            uri = str(source.uri.value) if isinstance(source.uri, Constant) else ""
            file = "" if uri.endswith("/") else uri.rsplit("/", 1)[-1]
            packed = False
            if source.fetched:
                file = fetched_name(uri)
                fetch[name] = {"url": uri, "sha256": source.sha256}
        else:
            file, packed = source.key, ctx.plan.tasks[source.task].kind == "training"
            gathered = collected_artifact_file(ctx, source.task, source.key)
        inputs[name] = {
            "dir": f"{in_root}/{name}",
            "file": file if gathered is None else gathered,
            "packed": packed,
            "type": task.input_artifact_types()[name]["artifactType"],
        }
        if name in fetch:  # no channel: the shim downloads the URL into `dir` before the task starts
            inputs[name]["fetch"] = fetch[name]
        if gathered is not None:
            # dsl.Collected of artifacts: one folder, `<i>/<file>` per item; the task gets the list
            inputs[name]["list"] = True
    outputs = {}
    for name, out in sorted(task.output_artifacts().items()):
        path = MODEL_DIR if name == task.model_output else f"{out_root}/{name}/{name}"
        if task.fan_out is not None:
            path = f"{out_root}/{name}"  # a folder: the shim writes item i's artifact under `<i>/`
        outputs[name] = {"path": path, "type": out["artifactType"]}
    constants = {n: s.value for n, s in task.parameters.items() if isinstance(s, Constant)}
    fan_out = {"fan_out": fan_out_spec(task)} if task.fan_out is not None else {}
    return {
        **fan_out,
        "pipeline": ctx.name,
        "task": task.key,
        "display_name": task.display_name,
        "component": task.component,
        "command": list(task.container.get("command", [])),
        "args": list(task.container.get("args", [])),
        "constants": constants,
        "input_artifacts": inputs,
        "output_artifacts": outputs,
        "outputs_file": f"{out_root}/{OUTPUTS_NAME}/{OUTPUTS_FILE}",
    }


def spec_asset(ctx: BuildContext, task: TaskPlan, spec: dict[str, Any]) -> SpecAsset:
    body = spec_bytes(spec)
    digest = spec_digest(body)
    return SpecAsset(
        uri=f"{ctx.config.s3_root()}/{ctx.name}/specs/{digest[:16]}/{task.key}.json", body=body, digest=digest
    )


def data_parameters_read(ctx: BuildContext, task: TaskPlan) -> list[str]:
    """The data parameters `task` reads: each becomes an input channel (`layout.data_channel`)."""
    return sorted(
        {s.name for s in task.parameters.values() if isinstance(s, PipelineParam) and s.name in ctx.data_parameters}
    )


def shim_arguments(ctx: BuildContext, task: TaskPlan, in_root: str, digest: str) -> list[Any]:
    args: list[Any] = ["--task", task.key, "--spec-dir", f"{in_root}/{SPEC_CHANNEL}"]
    # The spec's sha256 lives in the definition, so swapping the spec in S3 fails the step.
    args += [DIGEST_FLAG, digest]
    for name, source in task.parameters.items():
        if isinstance(source, Constant):
            continue
        if isinstance(source, PipelineParam) and source.name in ctx.data_parameters:
            uri = ctx.parameters[source.name].to_string()
            args += ["--data-param", name, f"{in_root}/{data_channel(source.name)}", uri]
        elif isinstance(source, Collected):
            for item in source.items:
                item_type = ctx.plan.tasks[item.task].output_parameters()[item.key]["parameterType"]
                args += ["--param-item", name, item_type, ctx.parameter_value(task.key, item)]
        elif isinstance(source, FinalStatus):
            args += final_status_arguments(ctx, task.key, name, source.handler)
        else:
            args += ["--param", name, ctx.parameter_value(task.key, source)]
    return args + handler_arguments(ctx, task)


def shim_environment(ctx: BuildContext, task: TaskPlan) -> dict[str, Any]:
    """The component's env, the MLflow hand-off (from the tracking parameters) and the runner's name."""
    from sagemaker.core.workflow.execution_variables import ExecutionVariables

    env: dict[str, Any] = {e["name"]: e["value"] for e in task.container.get("env", [])}
    for param, variable in TRACKING_PARAMETERS.items():
        env[variable] = ctx.parameters[param]
    env[ENV_RUNNER] = "sagemaker-local" if ctx.config.local_mode else "sagemaker"
    env["KUBESAGE_SAGEMAKER_EXECUTION_ARN"] = ExecutionVariables.PIPELINE_EXECUTION_ARN
    platform = ctx.platform.get(task.key)
    secret_env = mlflow_secret_env(ctx.config.mlflow_secret) if ctx.config.mlflow_secret else {}
    if platform is not None:
        env.update(platform.literal_env)  # ConfigMap values given at compile time (not secrets), pod labels
        if platform.job_name_env:
            env[pod_fields.ENV_JOB_NAME_ENV] = pod_fields.encode(platform.job_name_env)
        secret_env.update(platform.secret_env)
        if platform.secret_files:
            env[secret_files.ENV_SECRET_FILES] = secret_files.encode(platform.secret_files)
    if secret_env:
        # Names only: the shim reads the values when the job starts (secret_env.py).
        env[ENV_SECRET_ENV] = encode(secret_env)
    if secret_env or (platform is not None and platform.secret_files):
        env["AWS_DEFAULT_REGION"] = ctx.config.region
        if ctx.config.secrets_endpoint_url:
            env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = ctx.config.secrets_endpoint_url
    return env
