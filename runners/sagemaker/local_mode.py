"""Run a compiled pipeline through the SageMaker SDK's local mode (Docker), for CI and laptops.

The SDK v3 splits local mode in two: `sagemaker.core.workflow.pipeline_context.LocalPipelineSession`
defers the step arguments while the steps are built, and `sagemaker.mlops.local.LocalPipelineSession`
creates and executes the pipeline (each job a `docker-compose up` of the configured image). Both
talk to S3 for inputs, outputs and PropertyFiles, so `s3_endpoint_url` can point them at moto.

Local mode executes only Training, Processing, Transform, CreateModel, Fail and Condition steps:
the compiler is told (`local_mode=True`) to leave out the RegisterModel step and to keep its
CreateModelPackage request beside the definition; the register task's own MLflow registration runs
inside its container, and once the execution ran that task the runner resolves the request against
the execution and sends it to the SageMaker endpoint configured (`local_package.py`), so `kubesage
approve` and `kubesage deploy` follow as on AWS.

MLflow: the job containers join the host's network (`network_mode: host`, see `host_network_config`),
so a tracking server on the host's loopback (`mlflow server --host 127.0.0.1`) is reachable at the
very URI the runner uses. The steps open their nested runs under the parent run and the register
step registers into that server's registry, as with the KFP local runner. A SQLite or file store is
refused before anything runs (`check_tracking_uri`): containers cannot write to it.
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubesage.errors import RunnerError
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import Progress, RunContext, StepEvent
from kubesage.runners.sagemaker import SageMakerLocalOptions
from kubesage.runners.sagemaker.base import SageMakerRunnerBase, check_credentials_reach_steps, stage_data_parameters
from kubesage.runners.sagemaker.client import SageMakerClient, condition_outcome
from kubesage.runners.sagemaker.compiler import (
    OUTPUTS_FILE,
    OUTPUTS_NAME,
    CompiledPipeline,
    build_pipeline,
    offline_env,
    validate_sdk_config_once,
)
from kubesage.runners.sagemaker.compiler.pipeline import pipeline_name
from kubesage.runners.sagemaker.compiler.register import PackageRequest, package_group_name, register_task
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import plan_pipeline
from kubesage.runners.sagemaker.job_exit import read_job_exits_from_containers
from kubesage.runners.sagemaker.local_package import (
    ExecutionValues,
    RegisteredPackage,
    check_endpoint,
    register_package,
    resolve,
)
from kubesage.runners.sagemaker.sdk_output import capture_sdk_output, readable_failure
from kubesage.runners.sagemaker.telemetry import sdk_telemetry, telemetry_opted_out
from kubesage.runners.status import StepStatus
from kubesage.tracking import is_server_uri, tag_pipeline_run, tracking_uri
from kubesage.tracking.contract import TAG_MODEL_PACKAGE_ARN
from kubesage.util.redact import redact_uri

LOCAL_INSTANCE = "local"
# The run's log (the SDK's logging, each job's output), beside the local runner's task logs.
LOG_DIR = Path("local_outputs") / "logs"


@dataclass
class LocalStep:
    name: str
    status: str
    failure: str | None
    # A ConditionStep's outcome (its branch ran or was skipped); None for the steps that run jobs.
    condition: bool | None = None


@dataclass
class LocalExecution:
    """What a local-mode execution did, with every processing step's outputs.json read back."""

    execution_id: str
    status: str
    failure: str | None
    steps: list[LocalStep]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_path: Path | None = None  # the SDK's logging and every job's output
    tails: dict[str, list[str]] = field(default_factory=dict)  # failed step -> its last lines
    skipped_live: list[str] = field(default_factory=list)  # false conditions already reported as they ended
    # The RegisterModel step's request when its register task ran, and what resolves its references
    # (local mode runs no RegisterModel step: the runner sends the request, local_package.py).
    registered: PackageRequest | None = None
    values: ExecutionValues | None = None
    started: datetime.datetime | None = None  # when the execution was created (UTC)

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"

    def package_request(self) -> dict[str, Any] | None:
        """The CreateModelPackage request resolved against this execution; None if its register task did not run."""
        if self.registered is None or self.values is None:
            return None
        resolved: dict[str, Any] = resolve(self.registered.request, self.values)
        return resolved


def local_config(config: SageMakerConfig) -> SageMakerConfig:
    """The same settings, targeting local mode: `local` instances and no RegisterModel step."""
    return config.model_copy(update={"local_mode": True, "default_instance_type": LOCAL_INSTANCE, "instance_types": {}})


# The label on every job container of one run: its clean-up removes its own containers and no others.
RUN_LABEL = "io.kubesage.local-run"


def host_network_config(sdk_config: Mapping[str, Any] | None, run_id: str) -> dict[str, Any]:
    """The SDK's local-mode config (`~/.sagemaker/config.yaml`, if any) with jobs on the host network,
    labelled with `run_id`.

    `local.container_config` is the SDK's documented hook: it is merged into every docker-compose
    service it writes. Host networking is what lets a step reach MLflow on the host's 127.0.0.1 at
    the same URI (the same trust as the KFP local runner's subprocesses); other settings are kept.
    """
    config = copy.deepcopy(dict(sdk_config or {}))
    local = config.setdefault("local", {})
    container = local.get("container_config", {})
    labels = {**container.get("labels", {}), RUN_LABEL: run_id}
    local["container_config"] = {**container, "network_mode": "host", "labels": labels}
    return config


def prepare_sdk_local_mode() -> None:
    """What the SDK's local mode needs before kubesage starts a job: host networking allowed, and each
    job's exit code read from its containers (job_exit.py). Idempotent."""
    _allow_host_network()
    read_job_exits_from_containers()


def _allow_host_network() -> None:
    """Let `network_mode: host` from container_config through the SDK's compose file.

    The SDK (sagemaker-core 2.27, SDK v3: image.py `_SageMakerContainer._create_docker_host`) merges
    container_config first and then always adds `networks: {sagemaker-local: ...}`, which
    docker-compose refuses beside `network_mode` ("cannot be combined"). There is no config key to
    turn that off, so this wraps the method once: when a service asks for host networking, the
    SDK's bridge network entry is dropped; any other service is left exactly as the SDK built it.
    """
    from sagemaker.core.local import image

    container = image._SageMakerContainer
    if not callable(getattr(container, "_create_docker_host", None)):
        raise RunnerError(
            "this SageMaker SDK's local mode has no _SageMakerContainer._create_docker_host: "
            "kubesage cannot put its job containers on the host network (tested with sagemaker-core 2.27)"
        )
    if getattr(container._create_docker_host, "_kubesage_host_network", False):
        return
    original = container._create_docker_host

    def create_docker_host(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        service: dict[str, Any] = original(self, *args, **kwargs)
        if service.get("network_mode") == "host":
            service.pop("networks", None)
        return service

    create_docker_host._kubesage_host_network = True  # type: ignore[attr-defined]
    container._create_docker_host = create_docker_host


def check_tracking_uri(uri: str) -> None:
    """Refuse a tracking store the job containers cannot write to (a SQLite or file store on the host).

    A temporary server over the same SQLite file would not be enough: experiments created on a
    SQLite store keep their artifacts under a host path (`mlruns/<id>`), which a container could
    only write through a bind mount at that path (root-owned files in the user's tree). A model
    registered from a container would then point at artifacts that never left it.
    """
    if is_server_uri(uri):
        return
    raise RunnerError(
        f"MLFLOW_TRACKING_URI is {redact_uri(uri)!r}: SageMaker local-mode steps run in Docker containers and cannot "
        "write to a database or file store on this machine. Start a tracking server and point kubesage at it, "
        "e.g. `mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db` and "
        "`export MLFLOW_TRACKING_URI=http://127.0.0.1:5000` (containers share the host network, so "
        "127.0.0.1 works)"
    )


def _run_containers(run_id: str) -> set[str]:
    """Ids of this run's job containers, running or exited (another run's, started at the same
    time from another terminal, are not this run's to remove)."""
    import subprocess

    try:
        out = subprocess.run(
            ["docker", "ps", "-a", "--filter", f"label={RUN_LABEL}={run_id}", "--format", "{{.ID}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(out.split())


def _remove_containers(ids: set[str]) -> None:
    """The SDK's `docker-compose up` leaves its exited job containers behind; remove this run's."""
    import subprocess

    if ids:
        subprocess.run(["docker", "rm", *sorted(ids)], capture_output=True, timeout=60, check=False)


def run_local(
    spec: dict[str, Any],
    config: SageMakerConfig,
    parameters: Mapping[str, Any],
    boto_session: Any,
    s3_endpoint_url: str | None = None,
    platform_spec: dict[str, Any] | None = None,
    *,
    progress: Progress | None = None,
    log_path: Path | None = None,
    telemetry: bool = False,
) -> tuple[CompiledPipeline, LocalExecution]:
    """Compile `spec` for local mode, upload its task specs, execute it with Docker, collect outputs.

    The SDK's logging and the jobs' output go to `log_path` (a new file in the temporary directory if
    None) and `progress.log`; step starts and ends to `progress` as they happen; SDK telemetry stays
    off unless `telemetry` (or the user's SDK config) turns it on.
    """
    config = local_config(config)
    progress = progress or Progress()
    log_path = log_path or Path(tempfile.gettempdir()) / f"kubesage-sagemaker-local-{uuid.uuid4().hex[:8]}.log"
    client = SageMakerClient(
        s3=boto_session.client("s3", endpoint_url=s3_endpoint_url),
        sagemaker=None,
    )
    # Conditions are known by name only once compiled; the SDK logs nothing before the first step starts.
    conditions: set[str] = set()
    # The SDK validates its config against the JSON schema at every config lookup of every job it
    # starts (~100 times for the churn pipeline, most of a run's CPU outside the containers).
    with (
        capture_sdk_output(log_path, progress, conditions) as events,
        sdk_telemetry(telemetry) as telemetry_note,
        offline_env(config.region),
        validate_sdk_config_once(),
    ):
        logging.getLogger(__name__).info(telemetry_note)
        from sagemaker.core.workflow.pipeline_context import LocalPipelineSession as StepSession
        from sagemaker.mlops.local import LocalPipelineSession

        step_session = StepSession(
            boto_session=boto_session, default_bucket=config.bucket, s3_endpoint_url=s3_endpoint_url
        )
        pipeline, compiled = build_pipeline(spec, config, step_session, platform_spec)
        conditions.update(_steps_of_type(compiled, "Condition"))
        client.upload_assets(compiled.assets)
        run_session = LocalPipelineSession(
            boto_session=boto_session, default_bucket=config.bucket, s3_endpoint_url=s3_endpoint_url
        )
        logging.getLogger(__name__).info("TelemetryOptOut resolved by the SDK: %s", telemetry_opted_out(run_session))
        pipeline.sagemaker_session = run_session
        events.outcome = lambda step: _condition_outcome_now(run_session, compiled.name, step)
        prepare_sdk_local_mode()
        run_id = uuid.uuid4().hex
        run_session.config = host_network_config(run_session.config, run_id)
        run_session.create_pipeline(pipeline, f"kubesage local run of {compiled.name}")
        staged = stage_data_parameters(compiled, parameters, client, config.s3_root())
        values = {k: v for k, v in staged.items() if v is not None}
        try:
            execution = run_session.start_pipeline_execution(PipelineName=compiled.name, PipelineParameters=values)
        finally:
            _remove_containers(_run_containers(run_id))
        described = execution.describe()
        steps = [
            LocalStep(s["StepName"], s["StepStatus"], s.get("FailureReason"), condition_outcome(s))
            for s in execution.list_steps()["PipelineExecutionSteps"]
        ]
    failure = described.get("FailureReason")
    registered = compiled.model_package
    ran = {step.name for step in steps if step.status == "Succeeded"}
    if described["PipelineExecutionStatus"] != "Succeeded" or registered is None or registered.task not in ran:
        registered = None
    result = LocalExecution(
        execution_id=described["PipelineExecutionArn"],
        status=described["PipelineExecutionStatus"],
        failure=readable_failure(failure) if failure else None,
        steps=steps,
        log_path=log_path,
        tails={step: events.tail(step) for step in events.failed},
        skipped_live=list(events.skipped),
        registered=registered,
        values=_execution_values(execution, described) if registered is not None else None,
        started=_created(described),
    )
    processing = _steps_of_type(compiled, "Processing")
    for step in steps:
        if step.status == "Succeeded" and step.name in processing:
            uri = (
                f"{config.s3_root()}/{compiled.name}/runs/{result.execution_id}/{step.name}/"
                f"{OUTPUTS_NAME}/{OUTPUTS_FILE}"
            )
            try:
                result.outputs[step.name] = client.read_json(uri)
            except RunnerError:
                result.outputs[step.name] = {}
    return compiled, result


def _execution_values(execution: Any, described: Mapping[str, Any]) -> ExecutionValues:
    """What the request's expressions may read: the execution's ARN, parameters and each step's record.

    The step records are the Describe* responses local mode keeps to resolve `Steps.*` references
    itself (`_LocalPipelineExecution.step_execution[name].properties`, sagemaker-mlops 1.27).
    """
    records = getattr(execution, "step_execution", None) or {}
    return ExecutionValues(
        execution_arn=str(described["PipelineExecutionArn"]),
        parameters=dict(getattr(execution, "pipeline_parameters", None) or {}),
        step_properties={name: dict(getattr(record, "properties", None) or {}) for name, record in records.items()},
    )


def _created(described: Mapping[str, Any]) -> datetime.datetime:
    """The execution's creation time: local mode gives a POSIX timestamp, SageMaker a datetime."""
    created = described.get("CreationTime")
    if isinstance(created, datetime.datetime):
        return created.astimezone(datetime.UTC)
    if isinstance(created, int | float):
        return datetime.datetime.fromtimestamp(created, datetime.UTC)
    return datetime.datetime.now(datetime.UTC)


def _condition_outcome_now(run_session: Any, pipeline_name: str, step: str) -> bool | None:
    """A condition step's outcome while the execution runs, or None where this SDK keeps it elsewhere.

    The SDK's local executor logs a condition step's end but not its outcome; the outcome is on the
    execution's step record (`_LocalPipelineExecutionStep.properties["Outcome"]`, set before the SDK
    logs the end), reachable through the session's pipelines (sagemaker-mlops 1.27). Without it, a
    false condition is still reported, from ListPipelineExecutionSteps once the execution ends.
    """
    pipeline = (getattr(run_session, "_local_pipelines", None) or {}).get(pipeline_name)
    for execution in (getattr(pipeline, "_executions", None) or {}).values():
        record = getattr(execution, "step_execution", {}).get(step)
        properties = getattr(record, "properties", None) or {}
        if "Outcome" in properties:
            return bool(properties["Outcome"])
    return None


def _steps_of_type(compiled: CompiledPipeline, step_type: str) -> set[str]:
    """Names of the definition's steps of `step_type` ("Condition", "Processing"), nested ones included."""
    found: set[str] = set()

    def walk(steps: list[dict[str, Any]]) -> None:
        for step in steps:
            if step["Type"] == step_type:
                found.add(step["Name"])
            if step["Type"] == "Condition":
                walk(step["Arguments"].get("IfSteps", []))
                walk(step["Arguments"].get("ElseSteps", []))

    walk(compiled.definition["Steps"])
    return found


class SageMakerLocalRunner(SageMakerRunnerBase):
    """`kubesage run PIPELINE --runner sagemaker-local`: the compiled pipeline in SDK local mode."""

    name = "sagemaker-local"
    Options = SageMakerLocalOptions
    options: SageMakerLocalOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The last execution's steps and outputs.json, for callers that want more than RunResult.
        self.last_execution: LocalExecution | None = None

    def compile_config(self) -> SageMakerConfig:
        return local_config(super().compile_config())

    def input_endpoint(self) -> str | None:
        return self.options.s3_endpoint_url

    def preflight(self, pipeline: PipelineSource, parameters: Mapping[str, Any]) -> None:
        # Before the MLflow parent run opens: an unusable tracking URI fails without leaving a
        # FAILED run in a store the user cannot use anyway.
        check_tracking_uri(tracking_uri())
        check_credentials_reach_steps(os.environ, self.options.mlflow_secret)
        group = self.package_group(pipeline)
        if group is not None:
            check_endpoint(self.sagemaker_client(), group, self.options.endpoint_url or "boto3's default")

    def package_group(self, pipeline: PipelineSource) -> str | None:
        """The model package group the run registers in after local mode, or None (no register task, or
        `model_package=false`).

        From the plan, not a compile: an SDK compile here, before run_local builds the pipeline on its
        local session, leaves the SDK's step interception off for that build (sagemaker-core 2.27: the
        processing step then tries to start its job).
        """
        if not self.options.model_package:
            return None
        config = self.compile_config()
        plan = plan_pipeline(pipeline.spec)
        if register_task(plan, config) is None:
            return None
        return package_group_name(pipeline_name(plan, config), config)

    def sagemaker_client(self) -> SageMakerClient:
        """The S3 local mode uses (where the model artifact is) and the SageMaker endpoint configured."""
        from kubesage.util.boto_sessions import new_boto3_session

        session = new_boto3_session(region_name=self.options.region)
        return SageMakerClient(
            s3=session.client("s3", endpoint_url=self.options.s3_endpoint_url),
            sagemaker=session.client("sagemaker", endpoint_url=self.options.endpoint_url),
        )

    def _run(self, context: RunContext) -> None:
        from kubesage.util.boto_sessions import new_boto3_session

        # The steps join the parent run through pipeline parameters (the shim turns them back into
        # MLFLOW_TRACKING_URI etc.); on the host network the URI means the same inside the containers.
        parameters = self.run_parameters(context.parameters, context.tracking)
        log_path = LOG_DIR / f"{context.pipeline.name}-{context.tracking.run_id[:8]}.log"
        context.progress.info(
            f"running {context.pipeline.name} in SageMaker local mode with {self.options.image_uri}; "
            f"task logs in {log_path}"
        )
        boto_session = new_boto3_session(region_name=self.options.region)
        _, result = run_local(
            context.pipeline.spec,
            self.compile_config(),
            parameters,
            boto_session,
            self.options.s3_endpoint_url,
            context.pipeline.platform_spec,
            progress=context.progress,
            log_path=log_path,
            telemetry=self.options.telemetry,
        )
        self.last_execution = result
        context.record_backend_run(result.execution_id)
        for step in result.steps:
            if step.condition is False and step.name not in result.skipped_live:
                context.progress.step(StepEvent(step.name, StepStatus.SKIPPED, message="condition is false"))
        if not result.succeeded:
            for failed, lines in result.tails.items():
                tail = "\n".join(f"  | {line}" for line in lines) or "  | (the step printed nothing)"
                context.progress.info(f"last lines of step {failed} (full log: {log_path}):\n{tail}")
            raise RunnerError(f"SageMaker local-mode execution {result.execution_id} failed: {result.failure}")
        if result.registered is not None and self.options.model_package:
            package = self._register(result)
            tag_pipeline_run(context.tracking, {TAG_MODEL_PACKAGE_ARN: package.arn})
            made = "made" if package.created else "already made by this execution"
            context.progress.info(
                f"model package {package.arn} {made} ({package.status}, model {package.model_data_url}); "
                f"approve it with `kubesage approve {package.arn}`"
            )

    def _register(self, result: LocalExecution) -> RegisteredPackage:
        """The RegisterModel step's request, sent now; a failure says what stands and what to do."""
        try:
            request = result.package_request()
            assert request is not None and result.started is not None
            return register_package(self.sagemaker_client(), request, result.execution_id, result.started)
        except RunnerError as exc:
            raise RunnerError(
                f"the steps of execution {result.execution_id} succeeded (the register task's MLflow registration "
                f"stands), but no model package was made: {exc}. Fix that and run the pipeline again, or pass "
                "--option model_package=false to stop at MLflow"
            ) from exc
