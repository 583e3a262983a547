"""`kubesage deploy`: an Approved model package to a running API, through one CloudFormation change set.

    check the package is Approved -> verify its model artifact against the digest registration
    recorded (kubesage.deploy.integrity) -> package the Lambda zip (handler + the model's bundle)
    -> upload it by content hash (skipped when S3 holds the same bytes) -> render the template
    -> create a change set (CREATE or UPDATE) -> wait -> execute -> follow the endpoint to the end
    -> judge by the config it serves (kubesage.deploy.rollout) -> only then mark the version live in
    the registry (kubesage.deploy.live) -> outputs

An UPDATE changes the endpoint's config under the DeploymentConfig of `--strategy`
(kubesage.deploy.strategy): SageMaker shifts traffic in steps and rolls back if an alarm fires. A
rolled-back update raises RolledBackError (non-zero exit) naming the config served and the alarm,
and leaves the registry as it was. `rollback` deploys the previous live version the same way.

Everything goes through boto3, so AWS_ENDPOINT_URL (moto in server mode, in the tests) works as is.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kubesage.deploy.bundle import bundle_from_model
from kubesage.deploy.integrity import artifact_sha256, check_same_execution, recorded_for, verify_artifact
from kubesage.deploy.live import LiveVersion, model_of, previous_of, record_live
from kubesage.deploy.package import LambdaZip, build_zip
from kubesage.deploy.rollout import (
    FiredAlarm,
    SageMakerReader,
    Served,
    fired_alarms,
    follow,
    judge,
    read_served,
)
from kubesage.deploy.strategy import Strategy, Thresholds, alarm_parameters, check, describe
from kubesage.deploy.template import load_template, render
from kubesage.errors import DeployError
from kubesage.util.aws import AwsFailure, call_error, on_aws_failure
from kubesage.util.aws import aws_call as shared_aws_call
from kubesage.util.redact import redact_text

Progress = Callable[[str], None]
BUILD_DIR = Path("build") / "lambda"
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
STAGE = "prod"  # the template's StageName default
WAITER = {"Delay": 5, "MaxAttempts": 720}  # endpoints take minutes to come InService
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's rule, the template's pattern
ALARM_SUFFIXES = ("endpoint-5xx-rate", "endpoint-model-latency")  # the template's AlarmName values


@dataclass(frozen=True)
class DeployRequest:
    stack_name: str
    model_package_arn: str
    model: str
    execution_role_arn: str
    bucket: str
    instance_type: str = "ml.m5.large"
    region: str | None = None
    capture_prefix: str = "kubesage/data-capture"
    strategy: Strategy = dataclasses.field(default_factory=Strategy)
    thresholds: Thresholds = dataclasses.field(default_factory=Thresholds)
    # The drift schedule (lambda/template.yaml, DriftSchedule): an upserted monitor_churn pipeline's name
    # and the model version it checks; empty: no schedule.
    monitoring_pipeline: str = ""
    monitoring_model: str = ""


@dataclass(frozen=True)
class DeployResult:
    stack_name: str
    status: str
    change_set: str | None
    api_url: str
    api_key_id: str
    endpoint_name: str
    function_name: str
    code_s3_uri: str
    code_uploaded: bool
    endpoint_config: str = ""  # what DescribeEndpoint says the endpoint serves at the end
    serving_package: str = ""
    rolled_back: bool = False
    alarms: tuple[FiredAlarm, ...] = ()
    previous_package: str = ""

    @property
    def key_command(self) -> str:
        return f"aws apigateway get-api-key --api-key {self.api_key_id} --include-value --query value --output text"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key_command": self.key_command}


class RolledBackError(DeployError):
    """The update ended on the old endpoint config: the new version is not live (non-zero exit)."""

    def __init__(self, message: str, result: DeployResult) -> None:
        super().__init__(message)
        self.result = result


def aws_call(operation: str) -> AbstractContextManager[None]:
    """kubesage.util.aws's one botocore error mapping, raising DeployError (or AccessDeniedError)."""
    return shared_aws_call(operation, DeployError)


def _client(service: str, region: str | None) -> Any:
    import boto3

    return boto3.client(service, region_name=region)


def approval_status(arn: str, region: str | None = None) -> str:
    with aws_call(f"sagemaker:DescribeModelPackage {arn}"):
        status: str = _client("sagemaker", region).describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
    return status


def approve_model_package(arn: str, region: str | None = None) -> str:
    sagemaker = _client("sagemaker", region)
    with aws_call(f"sagemaker:DescribeModelPackage {arn}"):
        metadata = sagemaker.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties")
    arguments: dict[str, Any] = {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"}
    if metadata:
        # Sent again unchanged (as kubesage.deploy.live does): some implementations (moto 5.2) replace the
        # metadata with what the call carries, which would drop `kubesage:execution`, and deploy checks it.
        arguments["CustomerMetadataProperties"] = metadata
    with aws_call(f"sagemaker:UpdateModelPackage {arn}"):
        sagemaker.update_model_package(**arguments)
    return approval_status(arn, region)


def require_approved(arn: str, region: str | None) -> dict[str, Any]:
    """The package's description, if it is Approved; DeployError otherwise."""
    with aws_call(f"sagemaker:DescribeModelPackage {arn}"):
        package: dict[str, Any] = _client("sagemaker", region).describe_model_package(ModelPackageName=arn)
    status = package["ModelApprovalStatus"]
    if status != "Approved":
        raise DeployError(
            f"model package {arn} is {status}, not Approved; review it, then approve it with "
            f"`kubesage approve {arn}` or `aws sagemaker update-model-package --model-package-arn {arn} "
            "--model-approval-status Approved`"
        )
    return package


def verify_package(package: dict[str, Any], model: str, region: str | None) -> str:
    """The package's model artifact digest, once it matches what registration recorded for `model`."""
    arn = str(package["ModelPackageArn"])
    recorded = recorded_for(model)
    check_same_execution(arn, dict(package.get("CustomerMetadataProperties") or {}), recorded)
    containers = package.get("InferenceSpecification", {}).get("Containers") or [{}]
    url = str(containers[0].get("ModelDataUrl") or "")
    with aws_call(f"s3:GetObject {url}"):
        actual = artifact_sha256(_client("s3", region), url)
    verify_artifact(arn, url, actual, recorded)
    return actual


@dataclass(frozen=True)
class UploadedCode:
    uploaded: bool
    version_id: str  # "" when the bucket is not versioned


def upload_code(built: LambdaZip, bucket: str, region: str | None) -> UploadedCode:
    """Put the zip at its content-addressed key unless the very same bytes are already there.

    The key's name proves nothing: anyone who may write the bucket could have put other bytes
    there. The object is read back (about 20 KB) and its sha256 compared; different bytes are
    overwritten. On a versioned bucket the version checked (or written) is pinned in the stack
    (S3ObjectVersion), so a later overwrite cannot reach the function's next update either.
    """
    import hashlib

    s3 = _client("s3", region)
    where = f"s3://{bucket}/{built.s3_key}"
    get = f"s3:GetObject {where}"
    # Not there yet is expected (then it is put); access denied, no such bucket, ... are errors.
    with on_aws_failure(lambda failure: None if failure.not_found else call_error(get, failure, DeployError)):
        existing = s3.get_object(Bucket=bucket, Key=built.s3_key)
        if hashlib.sha256(existing["Body"].read()).hexdigest() == built.sha256:
            return UploadedCode(False, str(existing.get("VersionId") or "").replace("null", ""))
    with aws_call(f"s3:PutObject {where}"):
        put = s3.put_object(
            Bucket=bucket, Key=built.s3_key, Body=built.path.read_bytes(), Metadata={"sha256": built.sha256}
        )
    return UploadedCode(True, str(put.get("VersionId") or "").replace("null", ""))


def endpoint_name(stack: str) -> str:
    """The endpoint is named after the stack (the alarms watch it by name); SageMaker's rule applies."""
    if not ENDPOINT_NAME.fullmatch(stack):
        raise DeployError(
            f"--stack-name {stack!r} cannot name the endpoint: use at most 63 letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    return stack


def alarm_names(stack: str) -> list[str]:
    return [f"{stack}-{suffix}" for suffix in ALARM_SUFFIXES]


def parameters(
    request: DeployRequest, built: LambdaZip, model_sha256: str, code_version: str = ""
) -> list[dict[str, str]]:
    values = {
        "EndpointName": endpoint_name(request.stack_name),
        "ModelExecutionRoleName": request.execution_role_arn.rsplit("/", 1)[-1],
        **alarm_parameters(request.thresholds),
        "CodeObjectVersion": code_version,
        "ModelSha256": model_sha256,
        "ModelPackageArn": request.model_package_arn,
        "ModelExecutionRoleArn": request.execution_role_arn,
        "EndpointInstanceType": request.instance_type,
        "DataCaptureS3Uri": f"s3://{request.bucket}/{request.capture_prefix}",
        "CodeBucket": request.bucket,
        "CodeKey": built.s3_key,
    }
    if request.monitoring_pipeline:
        values["MonitoringPipelineName"] = request.monitoring_pipeline
        values["MonitoringModelUri"] = request.monitoring_model or request.model
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def stack_tags(model: str) -> list[dict[str, str]]:
    """The stack's tags: the --model string, credentials masked, since tags are readable by anyone
    who may describe the stack (and are copied to every resource)."""
    return [{"Key": "kubesage:model", "Value": redact_text(model)[:256]}]


def stack_exists(cfn: Any, name: str) -> bool:
    def failed(failure: AwsFailure) -> DeployError | None:
        if "does not exist" in failure.text:
            return None  # CloudFormation's ValidationError for a stack never created
        return DeployError(f"cloudformation:DescribeStacks {name} failed: {failure.text}")

    stacks: list[dict[str, Any]] = []
    with on_aws_failure(failed):
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    return bool(stacks) and stacks[0]["StackStatus"] != "REVIEW_IN_PROGRESS"


def deploy(
    request: DeployRequest,
    progress: Progress = lambda _: None,
    sagemaker: SageMakerReader | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Create or update the stack; an update is followed to its end and judged by what the endpoint serves.

    `sagemaker` reads the endpoint (default: a boto3 client); the tests pass a stand-in for the
    states SageMaker shows during an update, which moto cannot produce.
    """
    check(request.strategy, request.thresholds)
    endpoint_name(request.stack_name)
    package = require_approved(request.model_package_arn, request.region)
    progress(f"model package {request.model_package_arn} is Approved")
    model_sha256 = verify_package(package, request.model, request.region)
    progress(f"its model artifact has the sha256 registered for {redact_text(request.model)}: {model_sha256}")
    bundle = bundle_from_model(request.model)
    built = build_zip(bundle, BUILD_DIR)
    code = upload_code(built, request.bucket, request.region)
    uploaded = code.uploaded
    progress(f"function code s3://{request.bucket}/{built.s3_key} ({'uploaded' if uploaded else 'already there'})")

    import json
    from datetime import UTC, datetime

    cfn = _client("cloudformation", request.region)
    reader: SageMakerReader = sagemaker or _client("sagemaker", request.region)
    kind = "UPDATE" if stack_exists(cfn, request.stack_name) else "CREATE"
    before = live_before(cfn, reader, request) if kind == "UPDATE" else None
    change_set = f"kubesage-{time.strftime('%Y%m%d-%H%M%S')}"
    with aws_call(f"cloudformation:CreateChangeSet {change_set}"):
        cfn.create_change_set(
            StackName=request.stack_name,
            ChangeSetName=change_set,
            ChangeSetType=kind,
            TemplateBody=json.dumps(
                render(load_template(), request.strategy, schedule=bool(request.monitoring_pipeline))
            ),
            Parameters=parameters(request, built, model_sha256, code.version_id),
            Capabilities=["CAPABILITY_IAM"],
            Tags=stack_tags(bundle.model),
        )
    progress(f"change set {change_set} ({kind}) created; waiting for it")
    if not _wait_change_set(cfn, request.stack_name, change_set):
        progress("no changes: the stack already runs this model and code")
        return _result(cfn, request, None, "NO_CHANGES", built, uploaded)
    started = datetime.now(UTC)
    with aws_call(f"cloudformation:ExecuteChangeSet {change_set}"):
        cfn.execute_change_set(StackName=request.stack_name, ChangeSetName=change_set)
    if kind == "CREATE":
        progress(f"executing {change_set}; waiting for the stack (the endpoint takes minutes on AWS)")
        try:
            with aws_call(f"waiting for stack {request.stack_name}"):
                cfn.get_waiter("stack_create_complete").wait(StackName=request.stack_name, WaiterConfig=WAITER)
        except DeployError as exc:
            raise DeployError(f"{exc}; {failure_reasons(cfn, request.stack_name)}") from exc
        result = _result(cfn, request, change_set, kind, built, uploaded)
        served = read_served(reader, result.endpoint_name)
        _mark_live(request, None, progress)
        return _with_served(result, served, None)
    assert before is not None
    progress(f"executing {change_set}: {describe(request.strategy)}; following the endpoint to the end")
    with aws_call(f"following the update of {before.endpoint_name}"):
        followed = follow(
            lambda: _stack_status(cfn, request.stack_name),
            reader,
            before.endpoint_name,
            sleep=sleep,
            delay=WAITER["Delay"],
            max_polls=WAITER["MaxAttempts"],
            progress=progress,
        )
    verdict = judge(before, followed.served, request.model_package_arn)
    result = _with_served(
        _result(cfn, request, change_set, kind, built, uploaded), followed.served, before.model_package
    )
    if verdict == "promoted":
        progress(f"the endpoint serves {followed.served.endpoint_config} ({request.model_package_arn})")
        _mark_live(request, LiveVersion(before.model_package, before_model(before, cfn, request)), progress)
        return result
    alarms = fired_alarms(_client("cloudwatch", request.region), alarm_names(request.stack_name), since=started)
    result = dataclasses.replace(result, status="ROLLED_BACK" if verdict == "rolled-back" else "FAILED",
                                 rolled_back=verdict == "rolled-back", alarms=tuple(alarms))  # fmt: skip
    raise RolledBackError(rollback_message(request, before, followed, verdict, alarms, cfn), result)


def _stack_status(cfn: Any, stack: str) -> str:
    return str(cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"])


def live_before(cfn: Any, sagemaker: SageMakerReader, request: DeployRequest) -> Served:
    """What the stack's endpoint serves before the update (its config and package)."""
    name = outputs_from_resources(cfn, request.stack_name).get("EndpointName", "")
    if not name:
        raise DeployError(f"stack {request.stack_name} has no endpoint; delete the stack and deploy again")
    with aws_call(f"sagemaker:DescribeEndpoint {name}"):
        served = read_served(sagemaker, name)
    if not served.model_package:
        served = dataclasses.replace(
            served, model_package=stack_parameters(cfn, request.stack_name).get("ModelPackageArn", "")
        )
    return served


def before_model(before: Served, cfn: Any, request: DeployRequest) -> str:
    """The --model the version live before was deployed with: its package's record, else the stack's tag."""
    recorded = model_of(_client("sagemaker", request.region), before.model_package) if before.model_package else ""
    if recorded:
        return recorded
    with aws_call(f"cloudformation:DescribeStacks {request.stack_name}"):
        stack = cfn.describe_stacks(StackName=request.stack_name)["Stacks"][0]
    return next((t["Value"] for t in stack.get("Tags") or [] if t["Key"] == "kubesage:model"), "")


def _mark_live(request: DeployRequest, previous: LiveVersion | None, progress: Progress) -> None:
    record_live(
        _client("sagemaker", request.region),
        request.stack_name,
        LiveVersion(request.model_package_arn, request.model),
        previous if previous is not None and previous.package_arn else None,
    )
    progress(f"registry: {request.model_package_arn} and {redact_text(request.model)} recorded as live")


def _with_served(result: DeployResult, served: Served, previous: str | None) -> DeployResult:
    return dataclasses.replace(
        result,
        endpoint_config=served.endpoint_config,
        serving_package=served.model_package,
        previous_package=previous or "",
    )


def rollback_message(
    request: DeployRequest, before: Served, followed: Any, verdict: str, alarms: list[FiredAlarm], cfn: Any
) -> str:
    served = followed.served
    fired = "; ".join(f"alarm {a.name} fired: {a.reason}" for a in alarms) or "no rollback alarm in ALARM"
    if verdict == "rolled-back":
        head = (
            f"the update of {request.stack_name} rolled back: endpoint {served.endpoint_name} serves its previous "
            f"config {served.endpoint_config} ({before.model_package or 'its package'}), "
            f"not {request.model_package_arn}"
        )
    else:
        head = (
            f"the update of {request.stack_name} failed: endpoint {served.endpoint_name} is {served.status} on "
            f"config {served.endpoint_config or '(none)'}"
        )
    reason = f"; SageMaker: {served.failure_reason}" if served.failure_reason else ""
    stack = (
        ""
        if followed.stack_status.endswith("COMPLETE") and not followed.stack_status.startswith("UPDATE_ROLLBACK")
        else (f"; stack {followed.stack_status}, {failure_reasons(cfn, request.stack_name)}")
    )
    return f"{head}; {fired}{reason}{stack}; the registry still records the previous version as live"


def stack_parameters(cfn: Any, stack: str) -> dict[str, str]:
    with aws_call(f"cloudformation:DescribeStacks {stack}"):
        found = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in found.get("Parameters") or []}


@dataclass(frozen=True)
class RollbackRequest:
    stack_name: str
    region: str | None = None
    strategy: Strategy = dataclasses.field(default_factory=Strategy)
    thresholds: Thresholds = dataclasses.field(default_factory=Thresholds)


def rollback(
    request: RollbackRequest,
    progress: Progress = lambda _: None,
    sagemaker: SageMakerReader | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Deploy the version that was live before the current one, through the same checks and guardrails."""
    cfn = _client("cloudformation", request.region)
    if not stack_exists(cfn, request.stack_name):
        raise DeployError(f"no stack {request.stack_name}; nothing to roll back (deploy with kubesage deploy)")
    current = stack_parameters(cfn, request.stack_name)
    previous = previous_of(_client("sagemaker", request.region), current["ModelPackageArn"])
    if previous is None:
        raise DeployError(
            f"stack {request.stack_name} serves {current['ModelPackageArn']}, which records no previous live version; "
            "deploy the version you want with kubesage deploy"
        )
    progress(f"rolling {request.stack_name} back to {previous.package_arn} ({redact_text(previous.model)})")
    bucket = current["CodeBucket"]
    capture = current.get("DataCaptureS3Uri", "").removeprefix(f"s3://{bucket}/")
    return deploy(
        DeployRequest(
            stack_name=request.stack_name,
            model_package_arn=previous.package_arn,
            model=previous.model,
            execution_role_arn=current["ModelExecutionRoleArn"],
            bucket=bucket,
            instance_type=current.get("EndpointInstanceType", "ml.m5.large"),
            region=request.region,
            capture_prefix=capture or "kubesage/data-capture",
            strategy=request.strategy,
            thresholds=request.thresholds,
        ),
        progress=progress,
        sagemaker=sagemaker,
        sleep=sleep,
    )


def _wait_change_set(cfn: Any, stack: str, name: str) -> bool:
    """True when the change set is ready to execute, False when it holds no changes."""

    def not_created(failure: AwsFailure) -> DeployError | None:
        described = cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        reason = str(described.get("StatusReason", ""))
        if any(text in reason for text in NO_CHANGES):
            cfn.delete_change_set(StackName=stack, ChangeSetName=name)
            return None
        return DeployError(f"change set {name} failed: {reason or failure.text}")

    ready = False  # stays False when the waiter failed because the change set holds no changes
    with on_aws_failure(not_created):
        cfn.get_waiter("change_set_create_complete").wait(
            StackName=stack, ChangeSetName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 300}
        )
        ready = True
    return ready


def failure_reasons(cfn: Any, stack: str) -> str:
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    failed = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("FAILED")
    ]
    return "failed resources: " + ("; ".join(failed[:5]) if failed else "none reported")


def _result(
    cfn: Any, request: DeployRequest, change_set: str | None, kind: str, built: LambdaZip, uploaded: bool
) -> DeployResult:
    with aws_call(f"cloudformation:DescribeStacks {request.stack_name}"):
        stack = cfn.describe_stacks(StackName=request.stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    if not outputs:
        # The stack's resources say the same; moto, for one, omits outputs of stacks made by a change set.
        outputs = outputs_from_resources(cfn, request.stack_name)
    return DeployResult(
        stack_name=request.stack_name,
        status=stack["StackStatus"] if kind != "NO_CHANGES" else "NO_CHANGES",
        change_set=change_set,
        api_url=outputs.get("ApiUrl", ""),
        api_key_id=outputs.get("ApiKeyId", "(see the stack's ApiKey resource)"),
        endpoint_name=outputs.get("EndpointName", ""),
        function_name=outputs.get("FunctionName", ""),
        code_s3_uri=f"s3://{request.bucket}/{built.s3_key}",
        code_uploaded=uploaded,
    )


def outputs_from_resources(cfn: Any, stack: str) -> dict[str, str]:
    """The template's outputs rebuilt from the stack's physical resource ids."""
    with aws_call(f"cloudformation:DescribeStackResources {stack}"):
        resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    ids = {r.get("LogicalResourceId", ""): r.get("PhysicalResourceId") or "" for r in resources}
    outputs: dict[str, str] = {}
    if ids.get("RestApi"):
        region = cfn.meta.region_name
        outputs["ApiUrl"] = f"https://{ids['RestApi']}.execute-api.{region}.amazonaws.com/{STAGE}/predict"
    if ids.get("ApiKey"):
        outputs["ApiKeyId"] = ids["ApiKey"]
    if ids.get("Endpoint"):
        outputs["EndpointName"] = ids["Endpoint"].rsplit("/", 1)[-1]
    if ids.get("Function"):
        outputs["FunctionName"] = ids["Function"].rsplit(":", 1)[-1]
    return outputs


def render_template(strategy: Strategy | None = None, thresholds: Thresholds | None = None) -> str:
    import json

    if strategy is not None:
        check(strategy, thresholds or Thresholds())
    return json.dumps(render(load_template(), strategy), indent=1)
