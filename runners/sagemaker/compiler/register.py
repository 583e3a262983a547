"""Model package registration: the register task also gets a RegisterModel step.

The step is a plain CreateModelPackage request in a model package group; its approval status is an
execution parameter unless the config pins it. Local mode runs no RegisterModel step: there the same
request is kept beside the definition (`PackageRequest`, pipeline variables as the JSON expressions
the definition would hold) and the local runner sends it once the execution has run
(`runners/sagemaker/local_package.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.compiler.sdk_steps import step_classes
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import PipelinePlan, TaskOutputArtifact, TaskPlan


def register_task(plan: PipelinePlan, config: SageMakerConfig) -> str | None:
    """The configured register task, else the task named `register`, else none."""
    wanted = config.register_task
    if wanted is not None:
        if wanted not in plan.tasks:
            raise UnsupportedFeatureError(
                f"register task '{wanted}' is not a task of pipeline '{plan.name}'; "
                f"tasks: {', '.join(sorted(plan.tasks))}"
            )
        return wanted
    return "register" if "register" in plan.tasks else None


def model_package_group(ctx: BuildContext) -> str:
    return package_group_name(ctx.name, ctx.config)


def package_group_name(pipeline: str, config: SageMakerConfig) -> str:
    """The group of pipeline `pipeline` (its SageMaker name): the configured one, else `<pipeline>-models`."""
    return config.model_package_group or f"{pipeline}-models"


def model_package_step_name(task: TaskPlan) -> str:
    return f"{task.key}-model-package"


def register_step(ctx: BuildContext, task: TaskPlan, approval: Any) -> Any:
    """The RegisterModel step for `task`, which must read exactly one Model from a training task.

    `approval` is the pinned status (a string) or the approval execution parameter."""
    from sagemaker.core.workflow.execution_variables import ExecutionVariables

    models = [
        s
        for s in task.artifacts.values()
        if isinstance(s, TaskOutputArtifact) and ctx.plan.tasks[s.task].model_output == s.key
    ]
    if len(models) != 1:
        raise UnsupportedFeatureError(
            f"register task '{task.key}' must read exactly one Model from a training task, found {len(models)}"
        )
    return step_classes().register_model_package(
        name=model_package_step_name(task),
        request={
            "ModelPackageGroupName": model_package_group(ctx),
            "ModelApprovalStatus": approval,
            "InferenceSpecification": {
                "Containers": [{"Image": ctx.config.image_uri, "ModelDataUrl": ctx.artifact_uri(models[0])}],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
                "SupportedRealtimeInferenceInstanceTypes": list(ctx.config.inference_instance_types),
                "SupportedTransformInstanceTypes": list(ctx.config.inference_instance_types),
            },
            # The execution binds the package to the MLflow version the register step tagged with
            # the same ARN: `kubesage deploy` refuses a package and a --model that differ.
            "CustomerMetadataProperties": {
                "kubesage:pipeline": ctx.name,
                "kubesage:task": task.key,
                "kubesage:execution": ExecutionVariables.PIPELINE_EXECUTION_ARN,
            },
        },
        depends_on=[task.key],
        display_name=f"{task.display_name} (model package)",
    )


@dataclass(frozen=True)
class PackageRequest:
    """The RegisterModel step's CreateModelPackage request, as the definition would hold it.

    `request`'s pipeline variables are their JSON expressions (`{"Get": "Steps.train.ModelArtifacts.
    S3ModelArtifacts"}`, `{"Get": "Execution.PipelineExecutionArn"}`), resolved against an execution
    that ran. `task` is the register task: the package follows only its success.
    """

    task: str
    request: dict[str, Any]

    @property
    def group(self) -> str:
        return str(self.request["ModelPackageGroupName"])


def _expressions(value: Any) -> Any:
    """`value` with every SDK pipeline variable replaced by its JSON expression (what the definition holds)."""
    from sagemaker.core.helper.pipeline_variable import PipelineVariable

    if isinstance(value, PipelineVariable):
        return value.expr
    if isinstance(value, dict):
        return {key: _expressions(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_expressions(item) for item in value]
    return value


def package_request(ctx: BuildContext, task: TaskPlan, approval: str) -> PackageRequest:
    """For local mode: the request `register_step` would put in the definition, with a fixed approval
    (local mode has no approval execution parameter: the pinned status, else PendingManualApproval)."""
    step = register_step(ctx, task, approval)
    return PackageRequest(task=task.key, request=_expressions(step.arguments))
