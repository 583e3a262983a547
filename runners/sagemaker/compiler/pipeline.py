"""The compile entry points: KFP IR -> checked plan -> SDK steps in dependency order -> definition."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.ir.schema import check_spec
from kubesage.runners.sagemaker import platform
from kubesage.runners.sagemaker.compiler import explain
from kubesage.runners.sagemaker.compiler.conditions import condition_steps
from kubesage.runners.sagemaker.compiler.context import BuildContext
from kubesage.runners.sagemaker.compiler.exit_handler import (
    handler_line,
    ignore_line,
    ignore_status_steps,
    status_steps,
)
from kubesage.runners.sagemaker.compiler.fanout import fan_out_line
from kubesage.runners.sagemaker.compiler.order import topological
from kubesage.runners.sagemaker.compiler.parameters import (
    APPROVAL_PARAMETER,
    DEFAULT_APPROVAL,
    approval_parameter,
    checked_data_parameters,
    data_parameters,
    sdk_parameters,
)
from kubesage.runners.sagemaker.compiler.register import (
    PackageRequest,
    model_package_group,
    model_package_step_name,
    package_request,
    register_step,
    register_task,
)
from kubesage.runners.sagemaker.compiler.sdk_steps import step_classes
from kubesage.runners.sagemaker.compiler.session import (
    offline_env,
    offline_session,
    quiet_sdk,
    step_checks_without_local_sessions,
    validate_sdk_config_once,
)
from kubesage.runners.sagemaker.compiler.sharding import shard_plan
from kubesage.runners.sagemaker.compiler.steps import processing_step, training_step
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import Constant, ImportedArtifact, PipelinePlan, plan_pipeline
from kubesage.runners.sagemaker.naming import sagemaker_pipeline_name
from kubesage.runners.sagemaker.pinning import approval_status, pin_plan
from kubesage.runners.sagemaker.platform import PlatformPlan
from kubesage.runners.sagemaker.secret_policy import POLICY_SUFFIX, job_role_policy
from kubesage.util.boto_sessions import shared_service_models

_STEP_NAME_RE = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")


@dataclass(frozen=True)
class CompiledPipeline:
    """The definition plus the task specs it reads from S3, and the explain report."""

    name: str
    definition: dict[str, Any]
    assets: dict[str, bytes]
    report: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)
    data_parameters: tuple[str, ...] = ()
    # Local mode only: the RegisterModel step's request, which the local runner sends after the execution.
    model_package: PackageRequest | None = None
    model_package_group: str | None = None
    pinned: dict[str, Any] = field(default_factory=dict)
    # the job role's statement for the tasks' kfp-kubernetes secrets (secret_policy.py); None without any
    job_role_secrets_policy: dict[str, Any] | None = None

    def definition_json(self) -> str:
        return json.dumps(self.definition, indent=2, sort_keys=True) + "\n"

    def explain(self) -> str:
        return "\n".join(self.report) + "\n"

    def write(self, output: Path) -> list[Path]:
        """Write the definition to `output` and the task specs under `<output>.assets/`."""
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(self.definition_json(), encoding="utf-8")
        written = [output]
        if self.job_role_secrets_policy is not None:
            policy = output.with_name(output.name + POLICY_SUFFIX)
            policy.write_text(json.dumps(self.job_role_secrets_policy, indent=2) + "\n", encoding="utf-8")
            written.append(policy)
        asset_dir = output.with_name(output.name + ".assets")
        for uri, body in sorted(self.assets.items()):
            target = asset_dir / uri.removeprefix("s3://")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            written.append(target)
        return written


@dataclass
class _Built:
    """The SDK pipeline and what the compiled result reports beside it."""

    pipeline: Any
    name: str
    data_parameters: tuple[str, ...]
    assets: dict[str, bytes]
    report: list[str]
    model_package_group: str | None
    model_package: PackageRequest | None = None


def pipeline_name(plan: PipelinePlan, config: SageMakerConfig) -> str:
    return sagemaker_pipeline_name(config.pipeline_name or plan.name)


def _build(plan: PipelinePlan, config: SageMakerConfig, session: Any, platform_plan: PlatformPlan) -> _Built:
    """Every task's steps in dependency order, the ConditionSteps around them, the SDK `Pipeline`."""
    from sagemaker.mlops.workflow.pipeline import Pipeline

    parameters = sdk_parameters(plan, config)
    ctx = BuildContext(
        plan=plan,
        config=config,
        session=session,
        name=pipeline_name(plan, config),
        parameters=parameters,
        data_parameters=checked_data_parameters(plan, config),
        platform=platform_plan.tasks,
    )
    registering = register_task(plan, config)
    pinned_approval = approval_status(config.pinned_parameters, APPROVAL_PARAMETER)
    if registering and not config.local_mode and pinned_approval is None:
        parameters[APPROVAL_PARAMETER] = approval_parameter()

    report = explain.pipeline_lines(plan, config, ctx.name, ctx.data_parameters)
    assets: dict[str, bytes] = {}
    group: str | None = None
    deferred: PackageRequest | None = None
    extra_steps: dict[str, list[Any]] = {}
    for task in topological(plan):
        if task.kind == "training":
            step, asset = training_step(ctx, task)
            report.append(explain.training_line(task, config))
        else:
            step, asset = processing_step(ctx, task)
            report.append(fan_out_line(task, config) if task.fan_out else explain.processing_line(task, config))
        ctx.steps[task.key] = step
        assets[asset.uri] = asset.body
        if task.key == registering:
            if config.local_mode:
                deferred = package_request(ctx, task, pinned_approval or DEFAULT_APPROVAL)
                group = deferred.group
                report.append(explain.register_after_run_line(task, group, pinned_approval or DEFAULT_APPROVAL))
            else:
                approval = pinned_approval or parameters[APPROVAL_PARAMETER]
                extra_steps[task.key] = [register_step(ctx, task, approval)]
                group = model_package_group(ctx)
                report.append(explain.register_line(task, model_package_step_name(task), group, pinned_approval))
        report.extend(explain.task_details(plan, config, task))

    def steps_of(task: str) -> list[Any]:
        return [ctx.steps[task], *extra_steps.get(task, [])]

    conditions = condition_steps(ctx, steps_of)
    report += [explain.condition_line(key, plan.conditions[key]) for key in conditions]
    top = [step for key, task in sorted(plan.tasks.items()) if task.group is None for step in steps_of(key)]
    top += [conditions[k] for k, c in sorted(plan.conditions.items()) if c.group is None]
    top += status_steps(ctx) + ignore_status_steps(ctx)
    report += [handler_line(plan, handler) for handler in sorted(plan.exit_handlers)]
    report += [ignore_line(plan, task) for task in sorted(plan.ignoring)]
    pipeline = Pipeline(
        name=ctx.name,
        parameters=[parameters[n] for n in sorted(parameters)],
        steps=top,
        sagemaker_session=session,
    )
    return _Built(
        pipeline=pipeline,
        name=ctx.name,
        data_parameters=ctx.data_parameters,
        assets=assets,
        report=report,
        model_package_group=group,
        model_package=deferred,
    )


def _check_fetches(plan: PipelinePlan, config: SageMakerConfig) -> None:
    """An https:// import is fetched by the job: a job without network cannot run it."""
    if not config.enable_network_isolation:
        return
    for key, task in sorted(plan.tasks.items()):
        for name, source in task.artifacts.items():
            if isinstance(source, ImportedArtifact) and isinstance(source.uri, Constant) and source.fetched:
                raise UnsupportedFeatureError(
                    f"task '{key}': input '{name}' is fetched from {source.uri.value} by the job, which "
                    "enable_network_isolation cuts off; copy it to S3 and import the s3:// URI, or turn isolation off"
                )


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
    platform_plan = platform.translate(platform_spec, plan, config)
    _check_fetches(plan, config)
    for key in [*plan.tasks, *plan.conditions]:
        if not _STEP_NAME_RE.match(key):
            raise UnsupportedFeatureError(f"task '{key}': name is not a valid SageMaker step name")
    # issue 20: a training task on several instances; its sharded inputs' producers write one file each
    plan, _ = shard_plan(plan, config)
    with (
        offline_env(config.region),
        validate_sdk_config_once(),
        shared_service_models(),
        step_checks_without_local_sessions(),
    ):
        step_classes()  # defined here: importing the SDK's step module needs the offline environment
        built = _build(plan, config, session, platform_plan)
        definition = json.loads(built.pipeline.definition())
    compiled = CompiledPipeline(
        name=built.name,
        definition=definition,
        assets=dict(sorted(built.assets.items())),
        report=[*built.report, *platform_plan.notes],
        parameters={n: p.default for n, p in plan.parameters.items() if p.has_default},
        data_parameters=built.data_parameters,
        model_package=built.model_package,
        model_package_group=built.model_package_group,
        pinned=dict(config.pinned_parameters),
        job_role_secrets_policy=job_role_policy(platform_plan.secret_ids(), config.region, config.job_role()),
    )
    return built.pipeline, compiled


def compile_spec(
    spec: dict[str, Any], config: SageMakerConfig | None = None, platform_spec: dict[str, Any] | None = None
) -> CompiledPipeline:
    """KFP IR dict (+ the kfp-kubernetes PlatformSpec, if any) -> SageMaker definition, offline and deterministic."""
    config = config or SageMakerConfig()
    with quiet_sdk(), offline_session(config) as session:
        _, compiled = build_pipeline(spec, config, session, platform_spec)
    return compiled
