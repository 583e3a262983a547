"""Compile a KFP IR (PipelineSpec) into a SageMaker Pipelines definition with the SDK v3. Offline.

Every task runs the configured image through the shim (`shim.py`), which rebuilds KFP's executor
input from SageMaker's paths and runs the component's own command. The component's command and
constants travel in a per-task JSON "task spec" uploaded to S3 (`CompiledPipeline.assets`), because
SageMaker caps each container argument at 256 characters and lightweight components embed their
source in the command. Only runtime values (parameters, upstream outputs) go on the command line.

The SDK is driven through a `PipelineSession` with placeholder credentials, an explicit bucket,
telemetry off and role validation off, so building the definition makes no network call.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.ir.schema import check_spec, load_ir_documents
from kubesage.runners.sagemaker import cel, platform, security
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.integrity import DIGEST_FLAG, spec_bytes, spec_digest
from kubesage.runners.sagemaker.ir import (
    JSON_TYPES,
    ArtifactSource,
    Collected,
    Constant,
    ImportedArtifact,
    ParamSource,
    PipelineParam,
    PipelinePlan,
    TaskOutputArtifact,
    TaskOutputParam,
    TaskPlan,
    plan_pipeline,
)
from kubesage.runners.sagemaker.naming import sagemaker_pipeline_name
from kubesage.runners.sagemaker.pinning import approval_status, pin_plan
from kubesage.tracking.contract import ENV_EXPERIMENT_ID, ENV_PARENT_RUN_ID, ENV_RUNNER, ENV_TRACKING_URI
from kubesage.util.environment import environment
from kubesage.util.redact import redact_uri, uri_credentials

SHIM_ENTRYPOINT = ["python3", "-m", "kubesage.runners.sagemaker.shim"]
SPEC_CHANNEL = "kubesage-spec"
OUTPUTS_NAME = "kubesage-outputs"
OUTPUTS_FILE = "outputs.json"
PROCESSING_IN = "/opt/ml/processing/input"
PROCESSING_OUT = "/opt/ml/processing/output"
TRAINING_IN = "/opt/ml/input/data"
TRAINING_OUT = "/opt/ml/output/data"
MODEL_DIR = "/opt/ml/model"

APPROVAL_PARAMETER = "ModelApprovalStatus"
# Per-run tracking values: parameters, so one pipeline definition serves every run.
TRACKING_PARAMETERS = {
    "KubesageMlflowTrackingUri": ENV_TRACKING_URI,
    "KubesageMlflowParentRunId": ENV_PARENT_RUN_ID,
    "KubesageMlflowExperimentId": ENV_EXPERIMENT_ID,
}
_STEP_NAME_RE = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
_OFFLINE_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@dataclass(frozen=True)
class CompiledPipeline:
    """The definition plus the task specs it reads from S3, and the explain report."""

    name: str
    definition: dict[str, Any]
    assets: dict[str, bytes]
    report: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)
    data_parameters: tuple[str, ...] = ()
    model_package_group: str | None = None
    pinned: dict[str, Any] = field(default_factory=dict)

    def definition_json(self) -> str:
        return json.dumps(self.definition, indent=2, sort_keys=True) + "\n"

    def explain(self) -> str:
        return "\n".join(self.report) + "\n"

    def write(self, output: Path) -> list[Path]:
        """Write the definition to `output` and the task specs under `<output>.assets/`."""
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(self.definition_json(), encoding="utf-8")
        written = [output]
        asset_dir = output.with_name(output.name + ".assets")
        for uri, body in sorted(self.assets.items()):
            target = asset_dir / uri.removeprefix("s3://")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            written.append(target)
        return written


@contextmanager
def _offline_env(region: str) -> Iterator[None]:
    """Environment for building definitions without AWS: no role validation, a region for import."""
    # The SDK creates boto3 clients at import time; without keys in the environment, botocore's
    # credential chain would ask the EC2 instance metadata service (a network call).
    values = {"SAGEMAKER_VALIDATE_ROLE": "false", "AWS_EC2_METADATA_DISABLED": "true"}
    if not os.environ.get("AWS_DEFAULT_REGION") and not os.environ.get("AWS_REGION"):
        # `import sagemaker.mlops` creates boto3 clients at import time and needs a region.
        values["AWS_DEFAULT_REGION"] = region
    with environment(values):
        yield


def offline_session(config: SageMakerConfig) -> Any:
    """A PipelineSession that never calls AWS: placeholder keys, explicit bucket, telemetry off."""
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    boto_session = boto3.Session(
        aws_access_key_id="kubesage-offline",
        aws_secret_access_key="kubesage-offline",
        region_name=config.region,
    )
    return PipelineSession(
        boto_session=boto_session,
        default_bucket=config.bucket,
        default_bucket_prefix=config.prefix or None,
        sagemaker_config=_OFFLINE_SDK_CONFIG,
    )


def pipeline_name(plan: PipelinePlan, config: SageMakerConfig) -> str:
    return sagemaker_pipeline_name(config.pipeline_name or plan.name)


def _text(value: Any) -> str:
    """How a constant reaches the shim: strings raw, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def data_parameters(plan: PipelinePlan, config: SageMakerConfig) -> tuple[str, ...]:
    """Parameters that carry input data (an S3 URI at run time) rather than a plain value."""
    if config.data_parameters is not None:
        return tuple(config.data_parameters)
    return tuple(
        name
        for name, param in plan.parameters.items()
        if param.type == "STRING" and param.artifact_type is None and (name == "input_data" or name.endswith("_data"))
    )


def _topological(plan: PipelinePlan) -> list[TaskPlan]:
    order: list[TaskPlan] = []
    seen: set[str] = set()

    def visit(key: str, stack: tuple[str, ...]) -> None:
        if key in seen:
            return
        if key in stack:
            raise UnsupportedFeatureError(f"task '{key}': dependency cycle {' -> '.join((*stack, key))}")
        task = plan.tasks[key]
        upstream = set(task.depends_on) | _data_producers(task)
        for dep in sorted(upstream):
            for member in plan.tasks_in(dep):
                visit(member, (*stack, key))
        seen.add(key)
        order.append(task)

    for key in sorted(plan.tasks):
        visit(key, ())
    return order


def _data_producers(task: TaskPlan) -> set[str]:
    """Tasks whose outputs `task` reads (SageMaker infers these dependencies from the references)."""
    found: set[str] = set()
    for source in [*task.parameters.values(), *task.artifacts.values()]:
        if isinstance(source, TaskOutputParam | TaskOutputArtifact):
            found.add(source.task)
        elif isinstance(source, Collected):
            found |= {item.task for item in source.items}
    return found


class _Builder:
    def __init__(self, plan: PipelinePlan, config: SageMakerConfig, session: Any) -> None:
        from sagemaker.core.workflow.parameters import (
            ParameterBoolean,
            ParameterFloat,
            ParameterInteger,
            ParameterString,
        )

        self.plan = plan
        self.config = config
        self.session = session
        self.name = pipeline_name(plan, config)
        self.steps: dict[str, Any] = {}
        self.property_files: dict[str, Any] = {}
        self.assets: dict[str, bytes] = {}
        self.spec_digests: dict[str, str] = {}
        self.report: list[str] = []
        kinds = {
            "STRING": ParameterString,
            "NUMBER_INTEGER": ParameterInteger,
            "NUMBER_DOUBLE": ParameterFloat,
            "BOOLEAN": ParameterBoolean,
        }
        self.parameters: dict[str, Any] = {}
        for name, param in plan.parameters.items():
            if param.type in JSON_TYPES:
                # lists and dicts travel as JSON text; the shim decodes them to the declared type
                default = json.dumps(param.default) if param.has_default else None
                self.parameters[name] = (
                    ParameterString(name=name, default_value=default)
                    if param.has_default
                    else ParameterString(name=name)
                )
                continue
            cls = kinds[param.type]
            self.parameters[name] = cls(name=name, default_value=param.default) if param.has_default else cls(name=name)
        reserved = {APPROVAL_PARAMETER, *TRACKING_PARAMETERS}
        clash = sorted(reserved & set(self.parameters))
        if clash:
            raise UnsupportedFeatureError(f"pipeline parameters {clash} clash with names kubesage reserves")
        for name in sorted(TRACKING_PARAMETERS):
            default = config.mlflow_tracking_uri if name == "KubesageMlflowTrackingUri" else ""
            if uri_credentials(default):  # a parameter default is stored in the pipeline definition
                raise UnsupportedFeatureError(
                    f"the MLflow tracking URI {redact_uri(default)} carries a credential; a pipeline definition is "
                    "not secret: give the steps MLFLOW_TRACKING_TOKEN (or USERNAME/PASSWORD) through secrets"
                )
            self.parameters[name] = ParameterString(name=name, default_value=default)
        self.data_parameters = data_parameters(plan, config)
        for data_param in self.data_parameters:
            if plan.parameters.get(data_param) is None or plan.parameters[data_param].type != "STRING":
                raise UnsupportedFeatureError(
                    f"data parameter '{data_param}' is not a string parameter of pipeline '{plan.name}'"
                )
        self.model_package_group: str | None = None
        self.register_task = self._find_register_task()
        self.pinned_approval = approval_status(config.pinned_parameters, APPROVAL_PARAMETER)
        if self.register_task and not config.local_mode and self.pinned_approval is None:
            self.parameters[APPROVAL_PARAMETER] = ParameterString(
                name=APPROVAL_PARAMETER, default_value="PendingManualApproval"
            )

    # ---- helpers -------------------------------------------------------------------------------

    def _find_register_task(self) -> str | None:
        wanted = self.config.register_task
        if wanted is not None:
            if wanted not in self.plan.tasks:
                raise UnsupportedFeatureError(
                    f"register task '{wanted}' is not a task of pipeline '{self.plan.name}'; "
                    f"tasks: {', '.join(sorted(self.plan.tasks))}"
                )
            return wanted
        return "register" if "register" in self.plan.tasks else None

    def _run_prefix(self, task: str) -> Any:
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        return Join(
            on="/",
            values=[f"{self.config.s3_root()}/{self.name}/runs", ExecutionVariables.PIPELINE_EXECUTION_ID, task],
        )

    def _environment(self, task: TaskPlan) -> dict[str, Any]:
        from sagemaker.core.workflow.execution_variables import ExecutionVariables

        env: dict[str, Any] = {e["name"]: e["value"] for e in task.container.get("env", [])}
        for param, variable in TRACKING_PARAMETERS.items():
            env[variable] = self.parameters[param]
        env[ENV_RUNNER] = "sagemaker-local" if self.config.local_mode else "sagemaker"
        env["KUBESAGE_SAGEMAKER_EXECUTION_ARN"] = ExecutionVariables.PIPELINE_EXECUTION_ARN
        return env

    def _value(self, task: str, source: ParamSource) -> Any:
        from sagemaker.core.workflow.functions import JsonGet

        if isinstance(source, PipelineParam):
            return self.parameters[source.name].to_string()
        if isinstance(source, TaskOutputParam):
            producer = self.plan.tasks[source.task]
            if producer.kind != "processing":
                raise UnsupportedFeatureError(
                    f"task '{task}': reads output parameter '{source.key}' of training task '{source.task}' "
                    "(a training job has no PropertyFile); return it from a separate step"
                )
            return JsonGet(
                step_name=source.task,
                property_file=self.property_files[source.task],
                json_path=f"parameters.{source.key}",
            ).to_string()
        raise AssertionError(f"constants are written into the task spec, not {source}")

    def _artifact_uri(self, source: ArtifactSource) -> Any:
        from sagemaker.core.workflow.functions import Join

        if isinstance(source, ImportedArtifact):
            if isinstance(source.uri, PipelineParam):
                return self.parameters[source.uri.name]
            return str(source.uri.value)
        producer = self.steps[source.task]
        if self.plan.tasks[source.task].kind == "training":
            return producer.properties.ModelArtifacts.S3ModelArtifacts
        # The trailing '/' keeps the S3Prefix input to this output's folder: without it, output
        # `train` would also download a sibling output `train_data`.
        uri = producer.properties.ProcessingOutputConfig.Outputs[source.key].S3Output.S3Uri
        return Join(on="", values=[uri, "/"])

    def _task_spec(self, task: TaskPlan, in_root: str, out_root: str) -> dict[str, Any]:
        """What the shim needs besides runtime values: the component and where things are."""
        inputs = {}
        for name, source in task.artifacts.items():
            if isinstance(source, ImportedArtifact):
                # SageMaker downloads an S3 object into the channel under its base name; "" = what arrived
                uri = str(source.uri.value) if isinstance(source.uri, Constant) else ""
                file = "" if uri.endswith("/") else uri.rsplit("/", 1)[-1]
                packed = False
            else:
                file, packed = source.key, self.plan.tasks[source.task].kind == "training"
            inputs[name] = {
                "dir": f"{in_root}/{name}",
                "file": file,
                "packed": packed,
                "type": task.input_artifact_types()[name]["artifactType"],
            }
        outputs = {}
        for name, out in sorted(task.output_artifacts().items()):
            path = MODEL_DIR if name == task.model_output else f"{out_root}/{name}/{name}"
            outputs[name] = {"path": path, "type": out["artifactType"]}
        constants = {n: s.value for n, s in task.parameters.items() if isinstance(s, Constant)}
        return {
            "pipeline": self.name,
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

    def _spec_uri(self, task: TaskPlan, spec: dict[str, Any]) -> str:
        body = spec_bytes(spec)
        self.spec_digests[task.key] = spec_digest(body)
        uri = f"{self.config.s3_root()}/{self.name}/specs/{self.spec_digests[task.key][:16]}/{task.key}.json"
        self.assets[uri] = body
        return uri

    def _arguments(self, task: TaskPlan, in_root: str) -> list[Any]:
        args: list[Any] = ["--task", task.key, "--spec-dir", f"{in_root}/{SPEC_CHANNEL}"]
        # The spec's sha256 lives in the definition, so swapping the spec in S3 fails the step.
        args += [DIGEST_FLAG, self.spec_digests[task.key]]
        for name, source in task.parameters.items():
            if isinstance(source, Constant):
                continue
            if isinstance(source, PipelineParam) and source.name in self.data_parameters:
                uri = self.parameters[source.name].to_string()
                args += ["--data-param", name, f"{in_root}/param-{source.name}", uri]
            elif isinstance(source, Collected):
                for item in source.items:
                    item_type = self.plan.tasks[item.task].output_parameters()[item.key]["parameterType"]
                    args += ["--param-item", name, item_type, self._value(task.key, item)]
            else:
                args += ["--param", name, self._value(task.key, source)]
        return args

    def _data_params(self, task: TaskPlan) -> list[str]:
        return sorted(
            {
                s.name
                for s in task.parameters.values()
                if isinstance(s, PipelineParam) and s.name in self.data_parameters
            }
        )

    def _retry_policies(self, task: TaskPlan) -> list[Any] | None:
        from sagemaker.mlops.workflow.retry import (
            SageMakerJobExceptionTypeEnum,
            SageMakerJobStepRetryPolicy,
            StepExceptionTypeEnum,
            StepRetryPolicy,
        )

        if not task.retry or not task.retry.get("maxRetryCount"):
            return None
        attempts = int(task.retry["maxRetryCount"])
        interval = max(1, int(float(str(task.retry.get("backoffDuration", "1s")).rstrip("s") or 1)))
        rate = float(task.retry.get("backoffFactor", 2.0))
        return [
            StepRetryPolicy(
                exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
                max_attempts=attempts,
                interval_seconds=interval,
                backoff_rate=rate,
            ),
            SageMakerJobStepRetryPolicy(
                exception_types=[
                    SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                    SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                    SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                ],
                max_attempts=attempts,
                interval_seconds=interval,
                backoff_rate=rate,
            ),
        ]

    def _cache(self, task: TaskPlan) -> Any:
        from sagemaker.mlops.workflow.steps import CacheConfig

        if not task.caching:
            return None
        return CacheConfig(enable_caching=True, expire_after=self.config.cache_expire_after)

    def _depends_on(self, task: TaskPlan) -> list[str] | None:
        """Only ordering-only dependencies (`.after()`); data dependencies SageMaker infers.

        A dependency on an inlined group (sub-pipeline, unrolled loop, branch group) is one on its
        steps; one on an importer (no step) disappears."""
        data = _data_producers(task)
        steps = {step for dep in task.depends_on for step in self.plan.step_dependencies(dep)}
        rest = sorted(steps - data)
        return rest or None

    # ---- steps ---------------------------------------------------------------------------------

    def processing_step(self, task: TaskPlan) -> Any:
        from sagemaker.core.processing import Processor
        from sagemaker.core.shapes import (
            ProcessingInput,
            ProcessingOutput,
            ProcessingS3Input,
            ProcessingS3Output,
        )
        from sagemaker.core.workflow.functions import Join
        from sagemaker.core.workflow.properties import PropertyFile
        from sagemaker.mlops.workflow.steps import ProcessingStep

        def s3_input(name: str, uri: Any) -> Any:
            return ProcessingInput(
                input_name=name,
                s3_input=ProcessingS3Input(
                    s3_uri=uri, local_path=f"{PROCESSING_IN}/{name}", s3_data_type="S3Prefix", s3_input_mode="File"
                ),
            )

        spec = self._task_spec(task, PROCESSING_IN, PROCESSING_OUT)
        inputs = [s3_input(SPEC_CHANNEL, self._spec_uri(task, spec))]
        inputs += [s3_input(name, self._artifact_uri(src)) for name, src in task.artifacts.items()]
        inputs += [s3_input(f"param-{p}", self.parameters[p]) for p in self._data_params(task)]
        prefix = self._run_prefix(task.key)
        outputs = [
            ProcessingOutput(
                output_name=name,
                s3_output=ProcessingS3Output(
                    s3_uri=Join(on="/", values=[prefix, name]),
                    local_path=f"{PROCESSING_OUT}/{name}",
                    s3_upload_mode="EndOfJob",
                ),
            )
            for name in [*sorted(task.output_artifacts()), OUTPUTS_NAME]
        ]
        processor = Processor(
            image_uri=self.config.image_uri,
            role=self.config.job_role(),
            instance_count=self.config.instance_count(task.key),
            instance_type=self.config.instance_type(task.key),
            entrypoint=SHIM_ENTRYPOINT,
            volume_size_in_gb=self.config.volume_size_gb,
            max_runtime_in_seconds=self.config.max_runtime_seconds,
            env=self._environment(task),
            sagemaker_session=self.session,
            network_config=security.processing_network(self.config),
            **security.processing_keys(self.config),
        )
        step_args = processor.run(
            inputs=inputs, outputs=outputs, arguments=self._arguments(task, PROCESSING_IN), wait=False, logs=False
        )
        property_file = PropertyFile(name=f"{task.key}-outputs", output_name=OUTPUTS_NAME, path=OUTPUTS_FILE)
        self.property_files[task.key] = property_file
        step = ProcessingStep(
            name=task.key,
            step_args=step_args,
            display_name=task.display_name,
            property_files=[property_file],
            cache_config=self._cache(task),
            retry_policies=self._retry_policies(task),
            depends_on=self._depends_on(task),
        )
        self.report.append(
            f"task '{task.key}' ({task.display_name}) -> ProcessingStep '{task.key}' on "
            f"{self.config.instance_count(task.key)} x {self.config.instance_type(task.key)}; "
            f"outputs {sorted(task.output_artifacts()) or '[]'} + parameters {sorted(task.output_parameters())} "
            f"via PropertyFile '{property_file.name}'"
        )
        return step

    def training_step(self, task: TaskPlan) -> Any:
        from sagemaker.core.shapes import StoppingCondition
        from sagemaker.core.workflow.functions import Join
        from sagemaker.train import ModelTrainer
        from sagemaker.train.configs import Compute, InputData, OutputDataConfig

        spec = self._task_spec(task, TRAINING_IN, TRAINING_OUT)
        channels = [InputData(channel_name=SPEC_CHANNEL, data_source=self._spec_uri(task, spec))]
        channels += [InputData(channel_name=n, data_source=self._artifact_uri(s)) for n, s in task.artifacts.items()]
        channels += [
            InputData(channel_name=f"param-{p}", data_source=self.parameters[p]) for p in self._data_params(task)
        ]
        trainer = ModelTrainer(
            training_image=self.config.image_uri,
            role=self.config.job_role(),
            sagemaker_session=self.session,
            base_job_name=task.key,
            compute=Compute(
                instance_type=self.config.instance_type(task.key),
                instance_count=self.config.instance_count(task.key),
                volume_size_in_gb=self.config.volume_size_gb,
                volume_kms_key_id=self.config.volume_kms_key,
            ),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=self.config.max_runtime_seconds),
            output_data_config=OutputDataConfig(
                s3_output_path=f"{self.config.s3_root()}/{self.name}/models", kms_key_id=self.config.output_kms_key
            ),
            networking=security.training_networking(self.config),
        )
        step_args = trainer.train(input_data_config=channels, wait=False, logs=False)
        step = _ShimTrainingStep(
            name=task.key,
            step_args=step_args,
            display_name=task.display_name,
            cache_config=self._cache(task),
            retry_policies=self._retry_policies(task),
            depends_on=self._depends_on(task),
        )
        step.shim_overrides = {
            "ContainerEntrypoint": SHIM_ENTRYPOINT,
            "ContainerArguments": self._arguments(task, TRAINING_IN),
            "Environment": self._environment(task),
            "S3OutputPath": Join(on="/", values=[self._run_prefix(task.key), "model"]),
        }
        self.report.append(
            f"task '{task.key}' ({task.display_name}) -> TrainingStep '{task.key}' on "
            f"{self.config.instance_count(task.key)} x {self.config.instance_type(task.key)}; "
            f"Model output '{task.model_output}' = /opt/ml/model -> ModelArtifacts.S3ModelArtifacts; "
            f"other outputs {sorted(set(task.output_artifacts()) - {task.model_output})} and parameters "
            f"{sorted(task.output_parameters())} stay in the job's output.tar.gz (not readable downstream)"
        )
        return step

    def register_step(self, task: TaskPlan) -> Any:
        from sagemaker.core.workflow.execution_variables import ExecutionVariables

        models = [s for s in task.artifacts.values() if self.plan.tasks[s.task].model_output == s.key]
        if len(models) != 1:
            raise UnsupportedFeatureError(
                f"register task '{task.key}' must read exactly one Model from a training task, found {len(models)}"
            )
        group = self.model_package_group = self.config.model_package_group or f"{self.name}-models"
        step = _RegisterModelPackageStep(
            name=f"{task.key}-model-package",
            request={
                "ModelPackageGroupName": group,
                "ModelApprovalStatus": self.pinned_approval or self.parameters[APPROVAL_PARAMETER],
                "InferenceSpecification": {
                    "Containers": [{"Image": self.config.image_uri, "ModelDataUrl": self._artifact_uri(models[0])}],
                    "SupportedContentTypes": ["text/csv", "application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                    "SupportedRealtimeInferenceInstanceTypes": list(self.config.inference_instance_types),
                    "SupportedTransformInstanceTypes": list(self.config.inference_instance_types),
                },
                # The execution binds the package to the MLflow version the register step tagged with
                # the same ARN: `kubesage deploy` refuses a package and a --model that differ.
                "CustomerMetadataProperties": {
                    "kubesage:pipeline": self.name,
                    "kubesage:task": task.key,
                    "kubesage:execution": ExecutionVariables.PIPELINE_EXECUTION_ARN,
                },
            },
            depends_on=[task.key],
            display_name=f"{task.display_name} (model package)",
        )
        approval = (
            f"{APPROVAL_PARAMETER} pinned to {self.pinned_approval}"
            if self.pinned_approval
            else f"{APPROVAL_PARAMETER} execution parameter (default PendingManualApproval; anyone who may start "
            "the pipeline may set it: pin it to take it away)"
        )
        self.report.append(
            f"task '{task.key}' also -> RegisterModel step '{step.name}' in model package group '{group}' "
            f"with {approval}, after the MLflow registration"
        )
        return step

    def condition_expr(self, key: str, expression: cel.Expr, refs: Mapping[str, ParamSource]) -> list[Any]:
        """A CEL expression as the list of Condition* that ConditionStep ANDs together."""
        from sagemaker.core.workflow import conditions as c

        def operand(node: cel.Expr) -> Any:
            if isinstance(node, cel.Literal):
                return node.value
            if isinstance(node, cel.Ref):
                source = refs[node.name]
                if isinstance(source, Constant):
                    return source.value
                if isinstance(source, PipelineParam):
                    return self.parameters[source.name]
                from sagemaker.core.workflow.functions import JsonGet

                if source.task not in self.property_files:
                    raise UnsupportedFeatureError(
                        f"task '{key}': condition reads '{source.key}' of '{source.task}', which has no PropertyFile"
                    )
                return JsonGet(
                    step_name=source.task,
                    property_file=self.property_files[source.task],
                    json_path=f"parameters.{source.key}",
                )
            raise UnsupportedFeatureError(f"task '{key}': a condition operand must be a value, not {node}")

        comparisons = {
            "==": c.ConditionEquals,
            "<": c.ConditionLessThan,
            "<=": c.ConditionLessThanOrEqualTo,
            ">": c.ConditionGreaterThan,
            ">=": c.ConditionGreaterThanOrEqualTo,
        }

        def build(node: cel.Expr) -> Any:
            if isinstance(node, cel.Compare):
                left, right = operand(node.left), operand(node.right)
                if node.op == "!=":
                    return c.ConditionNot(expression=c.ConditionEquals(left=left, right=right))
                return comparisons[node.op](left=left, right=right)
            if isinstance(node, cel.Not):
                return c.ConditionNot(expression=build(node.operand))
            if isinstance(node, cel.Or):
                return c.ConditionOr(conditions=[build(o) for o in node.operands])
            if isinstance(node, cel.And):
                # SageMaker has no And inside Or/Not: De Morgan, a && b == !(!a || !b).
                return c.ConditionNot(
                    expression=c.ConditionOr(conditions=[c.ConditionNot(expression=build(o)) for o in node.operands])
                )
            raise UnsupportedFeatureError(f"task '{key}': a bare value {node} is not a condition")

        if isinstance(expression, cel.And):
            return [build(o) for o in expression.operands]
        return [build(expression)]

    # ---- whole pipeline ------------------------------------------------------------------------

    def build(self) -> Any:
        from sagemaker.mlops.workflow.condition_step import ConditionStep
        from sagemaker.mlops.workflow.pipeline import Pipeline

        self.report.append(f"pipeline '{self.plan.name}' -> SageMaker pipeline '{self.name}'")
        for name, param in self.plan.parameters.items():
            default = f"default {param.default!r}" if param.has_default else "required"
            kind = {
                "STRING": "ParameterString",
                "NUMBER_INTEGER": "ParameterInteger",
                "NUMBER_DOUBLE": "ParameterFloat",
                "BOOLEAN": "ParameterBoolean",
            }.get(param.type, "ParameterString holding JSON (the shim decodes it)")
            data = " (data: S3 URI downloaded into the step)" if name in self.data_parameters else ""
            if param.artifact_type is not None:
                schema = param.artifact_type.get("schemaTitle", "artifact")
                self.report.append(f"input artifact '{name}' {schema} -> ParameterString holding its S3 URI (required)")
                continue
            self.report.append(f"parameter '{name}' {param.type} -> {kind} ({default}){data}")
        self.report.extend(self.plan.notes)
        for key, imported in sorted(self.plan.imports.items()):
            uri = imported.uri.value if isinstance(imported.uri, Constant) else f"parameter '{imported.uri.name}'"
            self.report.append(f"dsl.importer '{key}' ({uri}) -> no step; its consumers read the S3 URI as an input")
        for name, value in sorted(self.config.pinned_parameters.items()):
            self.report.append(f"parameter '{name}' pinned to {value!r}: a constant, not an execution parameter")
        self.report.extend(security.report(self.config))
        extra_steps: dict[str, list[Any]] = {}
        for task in _topological(self.plan):
            step = self.training_step(task) if task.kind == "training" else self.processing_step(task)
            self.steps[task.key] = step
            if task.key == self.register_task:
                if self.config.local_mode:
                    self.report.append(
                        f"task '{task.key}': model package registration skipped (local mode runs no RegisterModel "
                        "steps); the MLflow registration inside the task still runs"
                    )
                else:
                    extra_steps[task.key] = [self.register_step(task)]
            self._report_task_details(task)

        def members(group: str) -> list[Any]:
            found: list[Any] = []
            for member in self.plan.conditions[group].members:
                if member in self.plan.conditions:
                    found.append(conditions[member])
                else:
                    found.append(self.steps[member])
                    found.extend(extra_steps.get(member, []))
            return found

        conditions: dict[str, Any] = {}
        # Innermost groups first, so a nested ConditionStep exists before its parent lists it.
        for key in sorted(self.plan.conditions, key=lambda k: -_depth(k, self.plan)):
            plan = self.plan.conditions[key]
            conditions[key] = ConditionStep(
                name=key,
                display_name=plan.display_name,
                conditions=self.condition_expr(key, plan.expression, plan.refs),
                if_steps=members(key),
                else_steps=[],
            )
            self.report.append(f"dsl.If '{plan.display_name}' ({plan.text}) -> ConditionStep '{key}'")
        top: list[Any] = []
        for key, task in sorted(self.plan.tasks.items()):
            if task.group is None:
                top.append(self.steps[key])
                top.extend(extra_steps.get(key, []))
        top += [conditions[k] for k, c in sorted(self.plan.conditions.items()) if c.group is None]
        return Pipeline(
            name=self.name,
            parameters=[self.parameters[n] for n in sorted(self.parameters)],
            steps=top,
            sagemaker_session=self.session,
        )

    def _report_task_details(self, task: TaskPlan) -> None:
        notes = []
        image = task.container.get("image")
        if image and image != self.config.image_uri:
            notes.append(f"image {image} replaced by {self.config.image_uri}")
        if task.caching:
            notes.append(f"caching -> CacheConfig(expire_after={self.config.cache_expire_after})")
        if task.retry and task.retry.get("maxRetryCount"):
            notes.append(
                f"retry x{task.retry['maxRetryCount']} -> StepRetryPolicy + SageMakerJobStepRetryPolicy "
                "(SageMaker retries service and infrastructure faults, not a failing component)"
            )
        if task.container.get("resources"):
            notes.append("resource requests ignored: instance type comes from the config")
        if task.origin:
            notes.append(f"inlined from {task.origin}")
        for name, source in task.parameters.items():
            if isinstance(source, TaskOutputParam):
                notes.append(f"input '{name}' <- JsonGet({source.task}.parameters.{source.key})")
            elif isinstance(source, Collected):
                tasks = ", ".join(item.task for item in source.items)
                notes.append(f"input '{name}' <- dsl.Collected: list of {len(source.items)} outputs ({tasks})")
            elif isinstance(source, PipelineParam) and self.plan.parameters[source.name].type in JSON_TYPES:
                notes.append(f"input '{name}' <- JSON text of parameter '{source.name}', decoded by the shim")
        for name, artifact in task.artifacts.items():
            if isinstance(artifact, ImportedArtifact):
                notes.append(f"input '{name}' <- S3 URI of {artifact.origin}")
        if notes:
            self.report.append(f"  {task.key}: " + "; ".join(notes))


def _depth(key: str, plan: PipelinePlan) -> int:
    depth = 0
    group = plan.conditions[key].group
    while group is not None:
        depth += 1
        group = plan.conditions[group].group
    return depth


def build_pipeline(
    spec: dict[str, Any], config: SageMakerConfig, session: Any, platform_spec: dict[str, Any] | None = None
) -> tuple[Any, CompiledPipeline]:
    """Build the SDK `Pipeline` object (for runners) and the compiled, offline-serializable result."""
    check_spec(spec, platform_spec)
    plan = plan_pipeline(spec)
    plan = pin_plan(
        plan,
        config.pinned_parameters,
        reserved=(APPROVAL_PARAMETER,),
        data_parameters=data_parameters(plan, config),
    )
    platform_notes = platform.translate(platform_spec, plan)
    for key in [*plan.tasks, *plan.conditions]:
        if not _STEP_NAME_RE.match(key):
            raise UnsupportedFeatureError(f"task '{key}': name is not a valid SageMaker step name")
    with _offline_env(config.region), _validate_sdk_config_once():
        _load_step_classes()
        builder = _Builder(plan, config, session)
        pipeline = builder.build()
        builder.report.extend(platform_notes)
        definition = json.loads(pipeline.definition())
    compiled = CompiledPipeline(
        name=builder.name,
        definition=definition,
        assets=dict(sorted(builder.assets.items())),
        report=builder.report,
        parameters={n: p.default for n, p in plan.parameters.items() if p.has_default},
        data_parameters=builder.data_parameters,
        model_package_group=builder.model_package_group,
        pinned=dict(config.pinned_parameters),
    )
    return pipeline, compiled


_VALIDATED_SDK_CONFIGS: list[dict[str, Any]] = []


@contextmanager
def _validate_sdk_config_once() -> Iterator[None]:
    """Validate the session's SDK config once per compile instead of at every config lookup.

    The SDK re-validates the whole config against its JSON schema (including checking the schema
    itself) on each `get_sagemaker_config_value`, about 60 times for a four-step pipeline: that made
    one compile take seconds to minutes. The configs are constants (`_OFFLINE_SDK_CONFIG`, the local
    mode defaults), so each is validated for real the first time in the process, and an equal dict is
    not validated again.
    """
    from sagemaker.core.config.config_manager import SageMakerConfig as SdkConfig

    original = SdkConfig.validate_sagemaker_config
    validated = _VALIDATED_SDK_CONFIGS

    def once(sagemaker_config: dict[str, Any] | None = None) -> None:
        if sagemaker_config is not None and sagemaker_config in validated:
            return
        original(sagemaker_config)
        if sagemaker_config is not None:
            validated.append(sagemaker_config)

    SdkConfig.validate_sagemaker_config = staticmethod(once)
    try:
        yield
    finally:
        SdkConfig.validate_sagemaker_config = staticmethod(original)


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """The SDK logs every popped job name and skipped role check: noise for an offline compile."""
    loggers = [logging.getLogger(name) for name in ("sagemaker", "sagemaker.config")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*Running within a PipelineSession.*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def compile_spec(
    spec: dict[str, Any], config: SageMakerConfig | None = None, platform_spec: dict[str, Any] | None = None
) -> CompiledPipeline:
    """KFP IR dict (+ the kfp-kubernetes PlatformSpec, if any) -> SageMaker definition, offline and deterministic."""
    config = config or SageMakerConfig()
    with _quiet_sdk():
        with _offline_env(config.region), _validate_sdk_config_once():
            session = offline_session(config)
        _, compiled = build_pipeline(spec, config, session, platform_spec)
    return compiled


def compile_file(path: str | Path, config: SageMakerConfig | None = None) -> CompiledPipeline:
    """KFP IR YAML file -> SageMaker definition (see `compile_spec`)."""
    spec, platform_spec = load_ir_documents(path)
    return compile_spec(spec, config, platform_spec)


_ShimTrainingStep: Any = None
_RegisterModelPackageStep: Any = None


def _load_step_classes() -> None:
    global _ShimTrainingStep, _RegisterModelPackageStep
    if _ShimTrainingStep is not None:
        return
    from sagemaker.core.workflow.properties import Properties
    from sagemaker.mlops.workflow.steps import Step, StepTypeEnum, TrainingStep

    class ShimTrainingStep(TrainingStep):
        """A TrainingStep whose container runs the shim.

        ModelTrainer only sets ContainerEntrypoint together with SDK-managed source code, and
        validates `environment` as plain strings; the shim needs its own entrypoint and pipeline
        variables (parameters, the execution ARN) in the environment, so they are added here.
        """

        shim_overrides: dict[str, Any]

        @property
        def arguments(self) -> dict[str, Any]:
            request: dict[str, Any] = super().arguments
            overrides = self.shim_overrides
            spec = request.setdefault("AlgorithmSpecification", {})
            spec["ContainerEntrypoint"] = overrides["ContainerEntrypoint"]
            spec["ContainerArguments"] = overrides["ContainerArguments"]
            request["Environment"] = overrides["Environment"]
            request.setdefault("OutputDataConfig", {})["S3OutputPath"] = overrides["S3OutputPath"]
            request.pop("HyperParameters", None)
            return request

    class RegisterModelPackageStep(Step):
        """A RegisterModel step from a plain CreateModelPackage request.

        `ModelBuilder.register()` would do the same but uploads code and creates the default
        bucket while building, which needs AWS; this keeps compile offline.
        """

        def __init__(self, name: str, request: dict[str, Any], depends_on: list[str], display_name: str) -> None:
            super().__init__(name, display_name, None, StepTypeEnum.REGISTER_MODEL, depends_on)
            self.request = request
            self._properties = Properties(step_name=name, step=self, shape_name="DescribeModelPackageOutput")

        @property
        def arguments(self) -> dict[str, Any]:
            return self.request

        @property
        def properties(self) -> Any:
            return self._properties

    _ShimTrainingStep = ShimTrainingStep
    _RegisterModelPackageStep = RegisterModelPackageStep


def compile_to_file(
    spec: dict[str, Any],
    output: Path,
    *,
    image_uri: str | None = None,
    role_arn: str | None = None,
    bucket: str | None = None,
    region: str | None = None,
    local_mode: bool = False,
) -> CompiledPipeline:
    """What `kubesage compile PIPELINE --target sagemaker` calls: unset flags keep the defaults.

    Writes `output` (the definition) and `<output>.assets/` (the task specs to upload); print
    `compiled.explain()` for `--explain`. Raises UnsupportedFeatureError (exit code 2) or a
    pydantic ValidationError for a malformed flag value.
    """
    flags = {"image_uri": image_uri, "role_arn": role_arn, "bucket": bucket, "region": region}
    settings: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if local_mode:
        settings.update(local_mode=True, default_instance_type="local")
    config = SageMakerConfig(**settings)
    compiled = compile_spec(spec, config)
    compiled.write(output)
    return compiled
