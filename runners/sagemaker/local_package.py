"""The model package local mode cannot make: the RegisterModel step's own request, sent after the run.

The SDK's local mode runs Training, Processing, Transform, CreateModel, Fail and Condition steps, not
RegisterModel. So the compiler keeps that step's CreateModelPackage request beside the local-mode
definition (`compiler.register.PackageRequest`: pipeline variables as the JSON expressions the
definition would hold), and once the execution ran the register task, the local runner resolves the
expressions against that execution (`resolve`: the training job's `ModelArtifacts.S3ModelArtifacts`
on the S3 local mode used, the execution ARN) and sends the request to the SageMaker endpoint the
user configured (`register_package`): CreateModelPackageGroup if the group is missing, then
CreateModelPackage, the call the RegisterModel step makes on SageMaker. `kubesage approve` and
`kubesage deploy` then take the package as they take one made on AWS.

Never half-registered: nothing is sent before the request resolved and its model artifact is in S3,
and CreateModelPackage is the one call that makes the package (a failed call leaves none; the group, if
made, is an empty container a later run reuses). Idempotent: a package this execution already made
(its CustomerMetadataProperties `kubesage:execution`) is returned instead of a second one.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker.client import SageMakerClient, split_s3_uri
from kubesage.util.aws import AwsFailure, aws_call, on_aws_failure

EXECUTION_KEY = "kubesage:execution"  # the key compiler/register.py gives the execution ARN
# A package of an execution cannot be older than the execution; the margin covers clock skew
# between this machine and the SageMaker endpoint.
CLOCK_SKEW = datetime.timedelta(hours=1)


def _aws(operation: str) -> AbstractContextManager[None]:
    return aws_call(operation, RunnerError)


@dataclass(frozen=True)
class ExecutionValues:
    """What a local-mode execution knows, to resolve the request's expressions with."""

    execution_arn: str
    parameters: Mapping[str, Any]  # the execution's parameter values
    step_properties: Mapping[str, Mapping[str, Any]]  # step -> its Describe* response (local mode's record)


@dataclass(frozen=True)
class RegisteredPackage:
    arn: str
    group: str
    status: str  # ModelApprovalStatus
    model_data_url: str
    created: bool  # False: this execution's package existed already, nothing was sent


def resolve(value: Any, values: ExecutionValues) -> Any:
    """`value` with each expression the RegisterModel step may hold replaced by its value in the execution."""
    if isinstance(value, dict):
        if set(value) == {"Get"}:
            return _get(str(value["Get"]), values)
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            return str(join["On"]).join(str(resolve(item, values)) for item in join["Values"])
        return {key: resolve(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, values) for item in value]
    return value


def _get(path: str, values: ExecutionValues) -> Any:
    head, _, rest = path.partition(".")
    if head == "Execution" and rest in ("PipelineExecutionArn", "PipelineExecutionId"):
        # Local mode gives both the execution's name (sagemaker.mlops.local.pipeline, _evaluate_execution_variable).
        return values.execution_arn
    if head == "Parameters" and rest in values.parameters:
        return values.parameters[rest]
    if head == "Steps":
        step, _, attribute = rest.partition(".")
        found: Any = values.step_properties.get(step)
        for part in attribute.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        if found is not None:
            return found
    raise RunnerError(f"the model package request reads {path}, which execution {values.execution_arn} did not record")


def model_data_url(request: Mapping[str, Any]) -> str:
    containers = request.get("InferenceSpecification", {}).get("Containers") or [{}]
    return str(containers[0].get("ModelDataUrl") or "")


def check_artifact(s3: Any, url: str) -> None:
    """The model artifact the package will name is in S3: a package pointing at nothing is not made."""
    bucket, key = split_s3_uri(url)
    with _aws(f"s3:HeadObject on {url} (the model package's ModelDataUrl)"):
        s3.head_object(Bucket=bucket, Key=key)


def find_package(sagemaker: Any, group: str, execution_arn: str, since: datetime.datetime) -> dict[str, Any] | None:
    """The package of `group` an earlier attempt made for `execution_arn`, if any.

    Only packages created since the execution started (less a margin) are described: ListModelPackages
    does not return CustomerMetadataProperties, and a package cannot predate its execution.
    """
    summaries: list[dict[str, Any]] = []
    with _aws(f"sagemaker:ListModelPackages in '{group}'"):
        for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
            summaries += page.get("ModelPackageSummaryList", [])
    for summary in summaries:
        created = summary.get("CreationTime")
        if isinstance(created, datetime.datetime) and created.astimezone(datetime.UTC) < since - CLOCK_SKEW:
            continue
        arn = str(summary["ModelPackageArn"])
        with _aws(f"sagemaker:DescribeModelPackage '{arn}'"):
            package: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=arn)
        if (package.get("CustomerMetadataProperties") or {}).get(EXECUTION_KEY) == execution_arn:
            return package
    return None


def register_package(
    client: SageMakerClient, request: Mapping[str, Any], execution_arn: str, started: datetime.datetime
) -> RegisteredPackage:
    """Send the resolved CreateModelPackage request (after CreateModelPackageGroup if the group is missing)."""
    group = str(request["ModelPackageGroupName"])
    url = model_data_url(request)
    check_artifact(client.s3, url)
    client.ensure_model_package_group(group)
    existing = find_package(client.sagemaker, group, execution_arn, started)
    if existing is not None:
        return RegisteredPackage(
            str(existing["ModelPackageArn"]), group, str(existing["ModelApprovalStatus"]), url, created=False
        )
    with _aws(f"sagemaker:CreateModelPackage in '{group}'"):
        arn = str(client.sagemaker.create_model_package(**request)["ModelPackageArn"])
    return RegisteredPackage(arn, group, str(request["ModelApprovalStatus"]), url, created=True)


def check_endpoint(client: SageMakerClient, group: str, where: str) -> None:
    """One read-only call before the run: the endpoint the package goes to answers these credentials.

    A run that reaches the package after minutes of jobs must not fail there for want of an endpoint.
    "No such group" is an answer (the group is made after the run).
    """

    def refuse(failure: AwsFailure) -> Exception | None:
        if failure.code in ("ResourceNotFound", "ValidationException"):
            return None
        return RunnerError(
            f"this pipeline registers a model package once local mode has run its steps, and the SageMaker "
            f"endpoint ({where}) did not answer sagemaker:DescribeModelPackageGroup: {failure.code or failure.text}"
            f"{': ' + failure.message if failure.code else ''}. Point --option endpoint_url=URL at one (moto in "
            "server mode works) with credentials it accepts, or pass --option model_package=false to register "
            "in MLflow only"
        )

    with on_aws_failure(refuse):
        client.sagemaker.describe_model_package_group(ModelPackageGroupName=group)
