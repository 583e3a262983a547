"""A thin client over boto3 for what the runner does on AWS: S3 uploads, pipelines, executions.

Every botocore error is mapped by `kubesage.util.aws.aws_call`, with the operation named, so callers and
the CLI never show a botocore traceback.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubesage.churn.data import file_sha256
from kubesage.errors import AccessDeniedError, KubesageError, RunnerError
from kubesage.runners.base import Progress, StepEvent
from kubesage.runners.status import StepStatus, from_sagemaker, statuses_to_report
from kubesage.util.aws import AwsFailure, aws_call, call_error, on_aws_failure

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})


class FollowTimeoutError(RunnerError):
    """The execution had not ended when the runner's timeout ran out."""


def _aws(operation: str) -> AbstractContextManager[None]:
    return aws_call(operation, RunnerError)


def _unless_missing(operation: str, failure: AwsFailure) -> KubesageError | None:
    """None when the resource does not exist yet (SageMaker says ResourceNotFound or, for some
    resources, ValidationException); kubesage's error for any other failure."""
    if failure.code in ("ResourceNotFound", "ValidationException"):
        return None
    return call_error(operation, failure, RunnerError)


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise RunnerError(f"'{uri}' is not an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


@dataclass
class SageMakerClient:
    """boto3 S3 and SageMaker clients for one region (and an endpoint URL for moto or a VPC endpoint)."""

    s3: Any
    sagemaker: Any
    ecr_client: Any = None

    @classmethod
    def create(cls, region: str, endpoint_url: str | None = None, session: Any | None = None) -> SageMakerClient:
        from kubesage.util.boto_sessions import new_boto3_session

        session = session or new_boto3_session(region_name=region)
        return cls(
            s3=session.client("s3", region_name=region, endpoint_url=endpoint_url),
            sagemaker=session.client("sagemaker", region_name=region, endpoint_url=endpoint_url),
            ecr_client=session.client("ecr", region_name=region, endpoint_url=endpoint_url),
        )

    def ecr(self) -> Any:
        """The ECR client the step image's tag is resolved through (kubesage.runners.sagemaker.image)."""
        if self.ecr_client is None:
            raise RunnerError("no ECR client to resolve the step image's tag; pass --image REPOSITORY@sha256:...")
        return self.ecr_client

    # ---- S3 --------------------------------------------------------------------------------------

    def upload_assets(self, assets: Mapping[str, bytes]) -> list[str]:
        """Upload the compiled task specs; content-addressed keys make re-uploads harmless."""
        for uri, body in sorted(assets.items()):
            bucket, key = split_s3_uri(uri)
            with _aws(f"s3:PutObject on {uri}"):
                self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        return sorted(assets)

    def upload_file(self, path: Path, s3_root: str) -> str:
        """Upload a local input file under `<s3_root>/<sha256-prefix>/<name>`; return its URI."""
        digest = file_sha256(path)[:16]
        uri = f"{s3_root.rstrip('/')}/{digest}/{path.name}"
        bucket, key = split_s3_uri(uri)
        with _aws(f"s3:PutObject on {uri}"):
            self.s3.upload_file(str(path), bucket, key)
        return uri

    def upload_folder(self, folder: Path, s3_root: str) -> str:
        """Upload a local input folder under `<s3_root>/<sha256-prefix>/<name>/`; return that prefix, with
        its trailing '/' (the step then gets the whole folder). The digest covers every file's relative
        path and content, so an unchanged folder maps to the same prefix."""
        import hashlib

        files = sorted(p for p in folder.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
        prefix = f"{s3_root.rstrip('/')}/{digest.hexdigest()[:16]}/{folder.name}/"
        bucket, key = split_s3_uri(prefix)
        for path in files:
            uri = f"{prefix}{path.relative_to(folder).as_posix()}"
            with _aws(f"s3:PutObject on {uri}"):
                self.s3.upload_file(str(path), bucket, f"{key}{path.relative_to(folder).as_posix()}")
        return prefix

    def read_json(self, uri: str) -> Any:
        import json

        bucket, key = split_s3_uri(uri)
        with _aws(f"s3:GetObject on {uri}"):
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return json.loads(body)

    # ---- pipelines -------------------------------------------------------------------------------

    def upsert_pipeline(self, name: str, definition: str, role_arn: str, description: str = "") -> str:
        """Create the pipeline, or update it if it exists; return its ARN."""
        exists = False  # unless DescribePipeline answers; "does not exist" is the only failure expected
        with on_aws_failure(lambda failure: _unless_missing(f"sagemaker:DescribePipeline '{name}'", failure)):
            self.sagemaker.describe_pipeline(PipelineName=name)
            exists = True
        common = {"PipelineName": name, "PipelineDefinition": definition, "RoleArn": role_arn}
        if description:
            common["PipelineDescription"] = description[:3072]
        if exists:
            with _aws(f"sagemaker:UpdatePipeline '{name}'"):
                arn: str = self.sagemaker.update_pipeline(**common)["PipelineArn"]
        else:
            with _aws(f"sagemaker:CreatePipeline '{name}'"):
                arn = self.sagemaker.create_pipeline(**common, PipelineDisplayName=name[:256])["PipelineArn"]
        return arn

    def ensure_model_package_group(self, name: str, description: str = "") -> str:
        operation = f"sagemaker:DescribeModelPackageGroup '{name}'"
        # Only "does not exist" means create it; AccessDenied and the rest surface as they are.
        with on_aws_failure(lambda failure: _unless_missing(operation, failure)):
            arn: str = self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"]
            return arn
        with _aws(f"sagemaker:CreateModelPackageGroup '{name}'"):
            arn = self.sagemaker.create_model_package_group(
                ModelPackageGroupName=name,
                ModelPackageGroupDescription=description or f"models registered by kubesage pipeline {name}",
            )["ModelPackageGroupArn"]
        return arn

    def start_execution(self, name: str, parameters: Mapping[str, str], display_name: str = "") -> str:
        request: dict[str, Any] = {
            "PipelineName": name,
            "PipelineParameters": [{"Name": k, "Value": v} for k, v in sorted(parameters.items())],
        }
        if display_name:
            request["PipelineExecutionDisplayName"] = display_name[:82]
        with _aws(f"sagemaker:StartPipelineExecution '{name}'"):
            arn: str = self.sagemaker.start_pipeline_execution(**request)["PipelineExecutionArn"]
        return arn

    def describe_execution(self, arn: str) -> dict[str, Any]:
        with _aws(f"sagemaker:DescribePipelineExecution '{arn}'"):
            described: dict[str, Any] = self.sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
        return described

    def list_steps(self, arn: str) -> list[dict[str, Any]]:
        with _aws(f"sagemaker:ListPipelineExecutionSteps '{arn}'"):
            steps: list[dict[str, Any]] = self.sagemaker.list_pipeline_execution_steps(
                PipelineExecutionArn=arn, SortOrder="Ascending"
            )["PipelineExecutionSteps"]
        return steps

    def stop_execution(self, arn: str) -> None:
        with _aws(f"sagemaker:StopPipelineExecution '{arn}'"):
            self.sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn)

    def _describe_with_retries(self, arn: str, attempts: int = 4) -> dict[str, Any]:
        """DescribePipelineExecution, retried with backoff: a throttle or a blip must not end the follow."""
        for attempt in range(attempts):
            try:
                return self.describe_execution(arn)
            except AccessDeniedError:
                raise
            except RunnerError:
                if attempt == attempts - 1:
                    raise
                time.sleep(min(30.0, 2.0**attempt))
        raise AssertionError("unreachable")

    def wait(
        self,
        arn: str,
        progress: Progress,
        poll_seconds: float = 15.0,
        timeout_seconds: float = 6 * 3600,
    ) -> dict[str, Any]:
        """Poll until the execution ends; report each step status change once."""
        deadline = time.monotonic() + timeout_seconds
        seen: dict[str, StepStatus] = {}
        list_steps = True
        while True:
            described = self._describe_with_retries(arn)
            steps: list[dict[str, Any]] = []
            if list_steps:
                try:
                    steps = self.list_steps(arn)
                except RunnerError as exc:
                    # Step status is progress only (moto, for one, lacks the call): keep following
                    # the execution status and say once why step lines are missing.
                    list_steps = False
                    progress.info(f"step status unavailable: {str(exc).splitlines()[0][:200]}")
            for step in steps:
                event = step_event(step)
                if event is None:
                    continue
                for change in statuses_to_report(seen.get(event.name), event.status):
                    # A step that ran between two polls gets its start line first.
                    progress.step(event if change is event.status else StepEvent(event.name, change))
                seen[event.name] = event.status
            if described["PipelineExecutionStatus"] in TERMINAL:
                return described
            if time.monotonic() > deadline:
                raise FollowTimeoutError(
                    f"pipeline execution {arn} still {described['PipelineExecutionStatus']} after "
                    f"{timeout_seconds:.0f}s; raise --option timeout_seconds=N or follow it in the console"
                )
            time.sleep(poll_seconds)


def condition_outcome(step: Mapping[str, Any]) -> bool | None:
    """A ConditionStep's outcome from `ListPipelineExecutionSteps` (None for other steps, or not yet known).

    SageMaker answers "True"/"False"; the SDK's local mode a bool.
    """
    outcome = ((step.get("Metadata") or {}).get("Condition") or {}).get("Outcome")
    return None if outcome is None else str(outcome).lower() == "true"


def step_event(step: Mapping[str, Any]) -> StepEvent | None:
    """A listed step as progress: a ConditionStep only when false (its branch was skipped), not as a task."""
    outcome = condition_outcome(step)
    if outcome is False:
        return StepEvent(step["StepName"], StepStatus.SKIPPED, message="condition is false")
    if outcome is True or step.get("StepType") == "Condition" or "Condition" in (step.get("Metadata") or {}):
        return None
    status = from_sagemaker(str(step.get("StepStatus", "")))
    if status is None:
        return None
    return StepEvent(step["StepName"], status, step_seconds(step), message=step.get("FailureReason"))


def step_seconds(step: Mapping[str, Any]) -> float | None:
    """How long an ended step took, from SageMaker's own StartTime and EndTime (None while it runs)."""
    started, ended = step.get("StartTime"), step.get("EndTime")
    if isinstance(started, datetime) and isinstance(ended, datetime):
        return max(0.0, (ended - started).total_seconds())
    return None
