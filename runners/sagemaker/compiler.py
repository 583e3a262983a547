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

import hashlib
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

from kubesage.environment import environment
from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import (
    Constant,
    ParamSource,
    PipelineParam,
    PipelinePlan,
    TaskOutputArtifact,
    TaskOutputParam,
    TaskPlan,
    load_ir,
    plan_pipeline,
)
from kubesage.tracking.contract import ENV_EXPERIMENT_ID, ENV_PARENT_RUN_ID, ENV_RUNNER, ENV_TRACKING_URI

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
_PIPELINE_NAME_RE = re.compile(r"[^A-Za-z0-9\-]+")
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
    name = config.pipeline_name or plan.name
    return _PIPELINE_NAME_RE.sub("-", name).strip("-")[:256]


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
        if param.type == "STRING" and (name == "input_data" or name.endswith("_data"))
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
        upstream = set(task.depends_on)
        upstream |= {s.task for s in task.parameters.values() if isinstance(s, TaskOutputParam)}
        upstream |= {s.task for s in task.artifacts.values()}
        for dep in sorted(upstream):
            for member in _expand(dep, plan):
                visit(member, (*stack, key))
        seen.add(key)
        order.append(task)

    for key in sorted(plan.tasks):
        visit(key, ())
    return order


def _expand(key: str, plan: PipelinePlan) -> list[str]:
    """A dependency on a condition group means a dependency on every task inside it."""
    if key in plan.tasks:
        return [key]
    if key in plan.branch_groups:
        return [t for member in plan.branch_groups[key] for t in _expand(member, plan)]
    return [t for member in plan.conditions[key].members for t in _expand(member, plan)]


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
        self.report: list[str] = []
        kinds = {
            "STRING": ParameterString,
            "NUMBER_INTEGER": ParameterInteger,
            "NUMBER_DOUBLE": ParameterFloat,
            "BOOLEAN": ParameterBoolean,
        }
        self.parameters: dict[str, Any] = {}
        for name, param in plan.parameters.items():
            cls = kinds[param.type]
            self.parameters[name] = cls(name=name, default_value=param.default) if param.has_default else cls(name=name)
        reserved = {APPROVAL_PARAMETER, *TRACKING_PARAMETERS}
        clash = sorted(reserved & set(self.parameters))
        if clash:
            raise UnsupportedFeatureError(f"pipeline parameters {clash} clash with names kubesage reserves")
        for name in sorted(TRACKING_PARAMETERS):
            default = config.mlflow_tracking_uri if name == "KubesageMlflowTrackingUri" else ""
            self.parameters[name] = ParameterString(name=name, default_value=default)
        self.data_parameters = data_parameters(plan, config)
        for data_param in self.data_parameters:
            if plan.parameters.get(data_param) is None or plan.parameters[data_param].type != "STRING":
                raise UnsupportedFeatureError(
                    f"data parameter '{data_param}' is not a string parameter of pipeline '{plan.name}'"
                )
        self.model_package_group: str | None = None
        self.register_task = self._find_register_task()
        if self.register_task and not config.local_mode:
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

    def _artifact_uri(self, source: TaskOutputArtifact) -> Any:
        producer = self.steps[source.task]
        if self.plan.tasks[source.task].kind == "training":
            return producer.properties.ModelArtifacts.S3ModelArtifacts
        return producer.properties.ProcessingOutputConfig.Outputs[source.key].S3Output.S3Uri

    def _task_spec(self, task: TaskPlan, in_root: str, out_root: str) -> dict[str, Any]:
        """What the shim needs besides runtime values: the component and where things are."""
        inputs = {}
        for name, source in task.artifacts.items():
            producer = self.plan.tasks[source.task]
            inputs[name] = {
                "dir": f"{in_root}/{name}",
                "file": source.key,
                "packed": producer.kind == "training",
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
        body = json.dumps(spec, indent=2, sort_keys=True).encode()
        digest = hashlib.sha256(body).hexdigest()[:16]
        uri = f"{self.config.s3_root()}/{self.name}/specs/{digest}/{task.key}.json"
        self.assets[uri] = body
        return uri

    def _arguments(self, task: TaskPlan, in_root: str) -> list[Any]:
        args: list[Any] = ["--task", task.key, "--spec-dir", f"{in_root}/{SPEC_CHANNEL}"]
        for name, source in task.parameters.items():
            if isinstance(source, Constant):
                continue
            if isinstance(source, PipelineParam) and source.name in self.data_parameters:
                args += ["--data-param", name, f"{in_root}/param-{source.name}"]
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
        """Only ordering-only dependencies (`.after()`); data dependencies SageMaker infers."""
        data = {s.task for s in task.parameters.values() if isinstance(s, TaskOutputParam)}
        data |= {s.task for s in task.artifacts.values()}
        rest = sorted(set(task.depends_on) - data)
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
            role=self.config.role_arn,
            instance_count=self.config.instance_count(task.key),
            instance_type=self.config.instance_type(task.key),
            entrypoint=SHIM_ENTRYPOINT,
            volume_size_in_gb=self.config.volume_size_gb,
            max_runtime_in_seconds=self.config.max_runtime_seconds,
            env=self._environment(task),
            sagemaker_session=self.session,
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
            role=self.config.role_arn,
            sagemaker_session=self.session,
            base_job_name=task.key,
            compute=Compute(
                instance_type=self.config.instance_type(task.key),
                instance_count=self.config.instance_count(task.key),
                volume_size_in_gb=self.config.volume_size_gb,
            ),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=self.config.max_runtime_seconds),
            output_data_config=OutputDataConfig(s3_output_path=f"{self.config.s3_root()}/{self.name}/models"),
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
                "ModelApprovalStatus": self.parameters[APPROVAL_PARAMETER],
                "InferenceSpecification": {
                    "Containers": [{"Image": self.config.image_uri, "ModelDataUrl": self._artifact_uri(models[0])}],
                    "SupportedContentTypes": ["text/csv", "application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                    "SupportedRealtimeInferenceInstanceTypes": list(self.config.inference_instance_types),
                    "SupportedTransformInstanceTypes": list(self.config.inference_instance_types),
                },
                "CustomerMetadataProperties": {"kubesage:pipeline": self.name, "kubesage:task": task.key},
            },
            depends_on=[task.key],
            display_name=f"{task.display_name} (model package)",
        )
        self.report.append(
            f"task '{task.key}' also -> RegisterModel step '{step.name}' in model package group '{group}' "
            f"with {APPROVAL_PARAMETER} parameter (default PendingManualApproval), after the MLflow registration"
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
            kind = {"STRING": "ParameterString", "NUMBER_INTEGER": "ParameterInteger"}.get(
                param.type, "ParameterFloat" if param.type == "NUMBER_DOUBLE" else "ParameterBoolean"
            )
            data = " (data: S3 URI downloaded into the step)" if name in self.data_parameters else ""
            self.report.append(f"parameter '{name}' {param.type} -> {kind} ({default}){data}")
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
        for name, source in task.parameters.items():
            if isinstance(source, TaskOutputParam):
                notes.append(f"input '{name}' <- JsonGet({source.task}.parameters.{source.key})")
        if notes:
            self.report.append(f"  {task.key}: " + "; ".join(notes))


def _depth(key: str, plan: PipelinePlan) -> int:
    depth = 0
    group = plan.conditions[key].group
    while group is not None:
        depth += 1
        group = plan.conditions[group].group
    return depth


def build_pipeline(spec: dict[str, Any], config: SageMakerConfig, session: Any) -> tuple[Any, CompiledPipeline]:
    """Build the SDK `Pipeline` object (for runners) and the compiled, offline-serializable result."""
    plan = plan_pipeline(spec)
    for key in [*plan.tasks, *plan.conditions]:
        if not _STEP_NAME_RE.match(key):
            raise UnsupportedFeatureError(f"task '{key}': name is not a valid SageMaker step name")
    with _offline_env(config.region):
        _load_step_classes()
        builder = _Builder(plan, config, session)
        pipeline = builder.build()
        definition = json.loads(pipeline.definition())
    compiled = CompiledPipeline(
        name=builder.name,
        definition=definition,
        assets=dict(sorted(builder.assets.items())),
        report=builder.report,
        parameters={n: p.default for n, p in plan.parameters.items() if p.has_default},
        data_parameters=builder.data_parameters,
        model_package_group=builder.model_package_group,
    )
    return pipeline, compiled


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


def compile_spec(spec: dict[str, Any], config: SageMakerConfig | None = None) -> CompiledPipeline:
    """KFP IR dict -> SageMaker definition, offline and deterministic."""
    config = config or SageMakerConfig()
    with _quiet_sdk():
        with _offline_env(config.region):
            session = offline_session(config)
        _, compiled = build_pipeline(spec, config, session)
    return compiled


def compile_file(path: str | Path, config: SageMakerConfig | None = None) -> CompiledPipeline:
    """KFP IR YAML file -> SageMaker definition (see `compile_spec`)."""
    return compile_spec(load_ir(path), config)


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
