"""The `compile --explain` report: how each parameter, task and feature maps onto SageMaker.

Pure text from the plan and the config; `pipeline.py` puts the lines in build order.
"""

from __future__ import annotations

from kubesage.runners.sagemaker import security
from kubesage.runners.sagemaker.compiler.layout import outputs_property_file
from kubesage.runners.sagemaker.compiler.parameters import APPROVAL_PARAMETER, DEFAULT_APPROVAL, SDK_PARAMETER_CLASSES
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import (
    JSON_TYPES,
    Collected,
    ConditionPlan,
    ImportedArtifact,
    PipelineParam,
    PipelinePlan,
    TaskOutputParam,
    TaskPlan,
)


def pipeline_lines(
    plan: PipelinePlan, config: SageMakerConfig, name: str, data_parameters: tuple[str, ...]
) -> list[str]:
    """The header: the pipeline, its parameters, plan notes, importers, pinned values, security."""
    lines = [f"pipeline '{plan.name}' -> SageMaker pipeline '{name}'"]
    for param_name, param in plan.parameters.items():
        if param.artifact_type is not None:
            schema = param.artifact_type.get("schemaTitle", "artifact")
            lines.append(f"input artifact '{param_name}' {schema} -> ParameterString holding its S3 URI (required)")
            continue
        default = f"default {param.default!r}" if param.has_default else "required"
        kind = SDK_PARAMETER_CLASSES.get(param.type, "ParameterString holding JSON (the shim decodes it)")
        data = " (data: S3 URI downloaded into the step)" if param_name in data_parameters else ""
        lines.append(f"parameter '{param_name}' {param.type} -> {kind} ({default}){data}")
    lines.extend(plan.notes)
    for key, imported in sorted(plan.imports.items()):
        lines.append(import_line(key, imported))
    for param_name, value in sorted(config.pinned_parameters.items()):
        lines.append(f"parameter '{param_name}' pinned to {value!r}: a constant, not an execution parameter")
    lines.extend(security.report(config))
    return lines


def import_line(key: str, imported: ImportedArtifact) -> str:
    uri = imported.uri
    if isinstance(uri, TaskOutputParam):
        return (
            f"dsl.importer '{key}' (the URI '{uri.task}' outputs as '{uri.key}') -> no step; its consumers read "
            f"JsonGet({uri.task}.parameters.{uri.key}) as an S3 input when they start (it must be an s3:// URI)"
        )
    if isinstance(uri, PipelineParam):
        return f"dsl.importer '{key}' (parameter '{uri.name}') -> no step; its consumers read the S3 URI as an input"
    if imported.fetched:
        check = f"checked against sha256 {imported.sha256}" if imported.sha256 else "unchecked (no sha256 in metadata)"
        return (
            f"dsl.importer '{key}' ({uri.value}) -> no step; each consumer's job fetches the URL before its task "
            f"starts, {check}; the job needs a route to it (no network isolation)"
        )
    return f"dsl.importer '{key}' ({uri.value}) -> no step; its consumers read the S3 URI as an input"


def _step_line(task: TaskPlan, config: SageMakerConfig, step_type: str) -> str:
    return (
        f"task '{task.key}' ({task.display_name}) -> {step_type} '{task.key}' on "
        f"{config.instance_count(task.key)} x {config.instance_type(task.key)}; "
    )


def processing_line(task: TaskPlan, config: SageMakerConfig) -> str:
    return _step_line(task, config, "ProcessingStep") + (
        f"outputs {sorted(task.output_artifacts()) or '[]'} + parameters {sorted(task.output_parameters())} "
        f"via PropertyFile '{outputs_property_file(task.key)}'"
    )


def training_line(task: TaskPlan, config: SageMakerConfig) -> str:
    return _step_line(task, config, "TrainingStep") + (
        f"Model output '{task.model_output}' = /opt/ml/model -> ModelArtifacts.S3ModelArtifacts; "
        f"other outputs {sorted(set(task.output_artifacts()) - {task.model_output})} and parameters "
        f"{sorted(task.output_parameters())} stay in the job's output.tar.gz (not readable downstream)"
    )


def register_line(task: TaskPlan, step_name: str, group: str, pinned_approval: str | None) -> str:
    approval = (
        f"{APPROVAL_PARAMETER} pinned to {pinned_approval}"
        if pinned_approval
        else f"{APPROVAL_PARAMETER} execution parameter (default {DEFAULT_APPROVAL}; anyone who may start "
        "the pipeline may set it: pin it to take it away)"
    )
    return (
        f"task '{task.key}' also -> RegisterModel step '{step_name}' in model package group '{group}' "
        f"with {approval}, after the MLflow registration"
    )


def register_after_run_line(task: TaskPlan, group: str, approval: str) -> str:
    return (
        f"task '{task.key}': local mode runs no RegisterModel step; once the execution has run it, the local "
        f"runner sends the step's CreateModelPackage request itself (group '{group}', {approval}) to the "
        "SageMaker endpoint configured (--option endpoint_url; --option model_package=false skips it), "
        "after the MLflow registration inside the task"
    )


def task_details(plan: PipelinePlan, config: SageMakerConfig, task: TaskPlan) -> list[str]:
    """One indented line of what else changed for `task` (image, caching, retry, inputs), if anything."""
    notes = []
    image = task.container.get("image")
    if image and image != config.image_uri:
        notes.append(f"image {image} replaced by {config.image_uri}")
    if task.caching and (task.exit_handler is not None or task.records_failure):
        notes.append("caching off: the step may record a failure and end successfully, which must not be cached")
    elif task.caching:
        notes.append(f"caching -> CacheConfig(expire_after={config.cache_expire_after})")
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
        elif isinstance(source, PipelineParam) and plan.parameters[source.name].type in JSON_TYPES:
            notes.append(f"input '{name}' <- JSON text of parameter '{source.name}', decoded by the shim")
    for name, artifact in task.artifacts.items():
        if isinstance(artifact, ImportedArtifact) and artifact.fetched:
            notes.append(f"input '{name}' <- fetched by the job from the URL of {artifact.origin}")
        elif isinstance(artifact, ImportedArtifact):
            notes.append(f"input '{name}' <- S3 URI of {artifact.origin}")
    return [f"  {task.key}: " + "; ".join(notes)] if notes else []


def condition_line(key: str, condition: ConditionPlan) -> str:
    return f"dsl.If '{condition.display_name}' ({condition.text}) -> ConditionStep '{key}'"
