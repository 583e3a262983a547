"""One task -> one SDK step: a ProcessingStep, or a TrainingStep for a task with a Model output.

Every job runs the configured image with the shim as its entry point; the task spec is its first
input channel. A processing step's PropertyFile (its outputs.json) is recorded in the context, so
the steps and conditions built after it can read its output parameters.
"""

from __future__ import annotations

from typing import Any

from kubesage.runners.sagemaker import security
from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.compiler.layout import (
    OUTPUTS_FILE,
    OUTPUTS_NAME,
    PROCESSING_IN,
    PROCESSING_OUT,
    SHIM_ENTRYPOINT,
    SPEC_CHANNEL,
    TRAINING_IN,
    TRAINING_OUT,
    data_channel,
    outputs_property_file,
)
from kubesage.runners.sagemaker.compiler.order import ordering_dependencies
from kubesage.runners.sagemaker.compiler.sdk_steps import step_classes
from kubesage.runners.sagemaker.compiler.taskspec import (
    SpecAsset,
    data_parameters_read,
    shim_arguments,
    shim_environment,
    spec_asset,
    task_spec,
)
from kubesage.runners.sagemaker.ir import TaskPlan
from kubesage.runners.sagemaker.local_cluster import cluster_environment


def processing_step(ctx: BuildContext, task: TaskPlan) -> tuple[Any, SpecAsset]:
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
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

    asset = spec_asset(ctx, task, task_spec(ctx, task, PROCESSING_IN, PROCESSING_OUT))
    inputs = [s3_input(SPEC_CHANNEL, asset.uri)]
    inputs += [s3_input(name, ctx.artifact_uri(src)) for name, src in ctx.channel_artifacts(task).items()]
    inputs += [s3_input(data_channel(p), ctx.parameters[p]) for p in data_parameters_read(ctx, task)]
    prefix = ctx.run_prefix(task.key)
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
    config = ctx.config
    processor = Processor(
        image_uri=config.image_uri,
        role=config.job_role(),
        instance_count=config.instance_count(task.key),
        instance_type=config.instance_type(task.key),
        entrypoint=SHIM_ENTRYPOINT,
        volume_size_in_gb=config.volume_size_gb,
        max_runtime_in_seconds=config.max_runtime_seconds,
        env=shim_environment(ctx, task),
        sagemaker_session=ctx.session,
        network_config=security.processing_network(config),
        **security.processing_keys(config),
    )
    arguments = shim_arguments(ctx, task, PROCESSING_IN, asset.digest)
    step_args = processor.run(inputs=inputs, outputs=outputs, arguments=arguments, wait=False, logs=False)
    property_file = PropertyFile(name=outputs_property_file(task.key), output_name=OUTPUTS_NAME, path=OUTPUTS_FILE)
    ctx.property_files[task.key] = property_file
    step = ProcessingStep(
        name=task.key,
        step_args=step_args,
        display_name=task.display_name,
        property_files=[property_file],
        cache_config=cache_config(ctx, task),
        retry_policies=retry_policies(task),
        depends_on=ordering_dependencies(ctx.plan, task),
    )
    return step, asset


def training_step(ctx: BuildContext, task: TaskPlan) -> tuple[Any, SpecAsset]:
    from sagemaker.core.shapes import StoppingCondition
    from sagemaker.core.workflow.functions import Join
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, OutputDataConfig

    config = ctx.config
    asset = spec_asset(ctx, task, task_spec(ctx, task, TRAINING_IN, TRAINING_OUT))
    channels = [InputData(channel_name=SPEC_CHANNEL, data_source=asset.uri)]
    channels += [
        InputData(channel_name=n, data_source=training_source(ctx, task, n, ctx.artifact_uri(s)))
        for n, s in ctx.channel_artifacts(task).items()
    ]
    channels += [
        InputData(channel_name=data_channel(p), data_source=ctx.parameters[p]) for p in data_parameters_read(ctx, task)
    ]
    trainer = ModelTrainer(
        training_image=config.image_uri,
        role=config.job_role(),
        sagemaker_session=ctx.session,
        base_job_name=task.key,
        compute=Compute(
            instance_type=config.instance_type(task.key),
            instance_count=config.instance_count(task.key),
            volume_size_in_gb=config.volume_size_gb,
            volume_kms_key_id=config.volume_kms_key,
        ),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=config.max_runtime_seconds),
        output_data_config=OutputDataConfig(
            s3_output_path=f"{config.s3_root()}/{ctx.name}/models", kms_key_id=config.output_kms_key
        ),
        networking=security.training_networking(config),
    )
    step_args = trainer.train(input_data_config=channels, wait=False, logs=False)
    step = step_classes().shim_training(
        name=task.key,
        step_args=step_args,
        display_name=task.display_name,
        cache_config=cache_config(ctx, task),
        retry_policies=retry_policies(task),
        depends_on=ordering_dependencies(ctx.plan, task),
    )
    environment = shim_environment(ctx, task)
    if config.local_mode and config.instance_count(task.key) > 1:
        # issue 20: the hosts share this machine's network and cores (local_cluster.py)
        environment.update(cluster_environment(config.instance_count(task.key)))
    step.shim_overrides = {
        "ContainerEntrypoint": SHIM_ENTRYPOINT,
        "ContainerArguments": shim_arguments(ctx, task, TRAINING_IN, asset.digest),
        "Environment": environment,
        "S3OutputPath": Join(on="/", values=[ctx.run_prefix(task.key), "model"]),
    }
    return step, asset


def training_source(ctx: BuildContext, task: TaskPlan, channel: str, uri: Any) -> Any:
    """The channel's S3 URI; on several instances, a sharded input gets ShardedByS3Key (issue 20), so
    each instance downloads its share of the objects (the train split is written as several files)."""
    from sagemaker.core.shapes import S3DataSource

    if ctx.config.instance_count(task.key) <= 1 or channel not in ctx.config.sharded_inputs:
        return uri
    if ctx.config.local_mode:
        # Local mode refuses ShardedByS3Key ("supports: FullyReplicated") and mounts every channel whole
        # on every host; the image's train then takes the files at its rank (components/distributed.py).
        return uri
    return S3DataSource(s3_data_type="S3Prefix", s3_uri=uri, s3_data_distribution_type="ShardedByS3Key")


def retry_policies(task: TaskPlan) -> list[Any] | None:
    """KFP's retry policy for both fault kinds SageMaker retries (never a failing component)."""
    from sagemaker.mlops.workflow.retry import (
        SageMakerJobExceptionTypeEnum,
        SageMakerJobStepRetryPolicy,
        StepExceptionTypeEnum,
        StepRetryPolicy,
    )

    if not task.retry or not task.retry.get("maxRetryCount"):
        return None
    backoff = {
        "max_attempts": int(task.retry["maxRetryCount"]),
        "interval_seconds": max(1, int(float(str(task.retry.get("backoffDuration", "1s")).rstrip("s") or 1))),
        "backoff_rate": float(task.retry.get("backoffFactor", 2.0)),
    }
    return [
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING], **backoff
        ),
        SageMakerJobStepRetryPolicy(
            exception_types=[
                SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
            ],
            **backoff,
        ),
    ]


def cache_config(ctx: BuildContext, task: TaskPlan) -> Any:
    from sagemaker.mlops.workflow.steps import CacheConfig

    # a task inside a dsl.ExitHandler (or before one ignoring upstream failure) ends "successfully" when its
    # component failed: never cache that
    if not task.caching or task.exit_handler is not None or task.records_failure:
        return None
    return CacheConfig(enable_caching=True, expire_after=ctx.config.cache_expire_after)
