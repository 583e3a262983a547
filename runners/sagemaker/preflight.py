"""What `--runner sagemaker` checks before an MLflow run opens: credentials, region, role, bucket, image.

Each check makes at most one cheap read-only call, in the order a new user meets the problems, and the
first failure ends the run with one line saying what to do; nothing is uploaded or recorded before. The
credentials are looked up locally first (no network), so a machine without any fails at once and is told
that `--runner sagemaker-local` runs the same definition here. A check the credentials may not make
(AccessDenied on iam:GetRole or s3:GetBucketLocation) is skipped: SageMaker checks the same thing when
the pipeline is created; runners/sagemaker/iam/user-policy.json allows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker.config import DEFAULT_IMAGE, DEFAULT_ROLE, SageMakerConfig
from kubesage.runners.sagemaker.image import pinned_image
from kubesage.tracking import is_server_uri
from kubesage.util.aws import AwsFailure, on_aws_failure
from kubesage.util.redact import redact_uri

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
_EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
_REJECTED = frozenset({"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException"})
LOCAL_HINT = "without an AWS account, `--runner sagemaker-local` runs the same definition on this machine (Docker)"


@dataclass(frozen=True)
class AwsClients:
    """The read-only clients the checks use, all through one endpoint (moto's, in tests)."""

    session: Any
    sts: Any
    iam: Any
    s3: Any
    ecr: Any

    @classmethod
    def create(cls, region: str, endpoint_url: str | None = None, session: Any | None = None) -> AwsClients:
        from botocore.config import Config

        from kubesage.util.boto_sessions import new_boto3_session

        # Fail in seconds, not botocore's default minute: these run before anything else and only read.
        config = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"})
        session = session or new_boto3_session(region_name=region)

        def client(service: str) -> Any:
            return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)

        return cls(session, client("sts"), client("iam"), client("s3"), client("ecr"))


def check_credentials(clients: AwsClients, region: str) -> str:
    """The caller's account id (STS GetCallerIdentity); a RunnerError saying what to do otherwise."""
    if clients.session.get_credentials() is None:
        raise RunnerError(
            "no AWS credentials found (environment, ~/.aws, SSO or instance role): run `aws configure` or "
            f"`aws sso login`, or export AWS_PROFILE; {LOCAL_HINT}"
        )

    def refused(failure: AwsFailure) -> RunnerError:
        if failure.code in _EXPIRED:
            return RunnerError(f"the AWS credentials have expired ({failure.message}): refresh them (`aws sso login`)")
        if failure.code in _REJECTED:
            return RunnerError(
                f"AWS rejected the credentials ({failure.code}): check AWS_ACCESS_KEY_ID/AWS_PROFILE, or {LOCAL_HINT}"
            )
        if failure.answered:
            return RunnerError(f"sts:GetCallerIdentity in region {region} failed: {failure.code}: {failure.message}")
        return RunnerError(
            f"cannot reach AWS STS in region {region!r} ({failure.message}): check --region and the network"
        )

    with on_aws_failure(refused):
        account: str = clients.sts.get_caller_identity()["Account"]
        return account
    raise AssertionError("unreachable")  # on_aws_failure raised


def _role_account_and_name(arn: str) -> tuple[str, str]:
    account = arn.split(":")[4]
    return account, arn.rsplit("/", 1)[-1]


def check_role(clients: AwsClients, arn: str, account: str, flag: str) -> None:
    """The role is this account's (SageMaker takes only those), exists, and trusts SageMaker."""
    if arn == DEFAULT_ROLE:
        raise RunnerError(
            f"no execution role given: pass {flag} arn:aws:iam::{account}:role/NAME (create it from "
            "runners/sagemaker/iam/, see runners/sagemaker/README.md)"
        )
    role_account, name = _role_account_and_name(arn)
    if role_account != account:
        raise RunnerError(
            f"the role {arn} is in account {role_account}, but the credentials are of account {account}, and "
            f"SageMaker takes only a role of the caller's account: pass {flag} arn:aws:iam::{account}:role/{name}"
        )

    def missing(failure: AwsFailure) -> RunnerError | None:
        if failure.access_denied:
            return None  # may not look: SageMaker checks it at CreatePipeline
        if failure.code == "NoSuchEntity":
            return RunnerError(
                f"the role {name} does not exist in account {account}: create it (runners/sagemaker/README.md, "
                f"Commands for a real AWS account) or pass {flag} ARN"
            )
        return RunnerError(f"cannot read the role {name} (iam:GetRole): {failure.code or failure.text}")

    with on_aws_failure(missing):
        trust = clients.iam.get_role(RoleName=name)["Role"].get("AssumeRolePolicyDocument") or {}
        if SAGEMAKER_SERVICE not in _trusted_services(trust):
            raise RunnerError(
                f"the role {name} does not trust {SAGEMAKER_SERVICE}, so SageMaker cannot assume it: give it "
                "the trust policy in runners/sagemaker/iam/pipeline-trust.json"
            )


def _trusted_services(document: Any) -> set[str]:
    """Service principals an assume-role policy allows (a JSON string or, from boto3, a dict)."""
    import json
    from urllib.parse import unquote

    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    services: set[str] = set()
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal") or {}
        service = principal.get("Service", []) if isinstance(principal, dict) else []
        services.update([service] if isinstance(service, str) else service)
    return services


def check_bucket(clients: AwsClients, bucket: str, region: str) -> None:
    """The bucket exists and is in the pipeline's region (s3:GetBucketLocation, which lists nothing)."""

    def missing(failure: AwsFailure) -> RunnerError | None:
        if failure.access_denied:
            return None  # may not look: the first upload will say
        if failure.code in ("NoSuchBucket", "404"):
            return RunnerError(
                f"the bucket {bucket} does not exist: create it (`aws s3api create-bucket --bucket {bucket} "
                f"--region {region}`) or pass --bucket NAME"
            )
        return RunnerError(f"cannot read the bucket {bucket} (s3:GetBucketLocation): {failure.code or failure.text}")

    with on_aws_failure(missing):
        # us-east-1 answers None (S3's oldest convention); EU the legacy name of eu-west-1.
        location = clients.s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
        location = "eu-west-1" if location == "EU" else location
        if location != region:
            raise RunnerError(
                f"the bucket {bucket} is in {location}, but the pipeline runs in {region}: SageMaker jobs use a "
                f"bucket of their own region; pass --region {location} or a bucket in {region}"
            )


def check_image(clients: AwsClients, image_uri: str, account: str, region: str) -> str:
    """The step image by digest: an ECR tag resolved (it must exist), a digest used as given."""
    if image_uri == DEFAULT_IMAGE:
        raise RunnerError(
            f"no step image given: push the kubesage image (`make image`) to ECR and pass --image "
            f"{account}.dkr.ecr.{region}.amazonaws.com/kubesage/xgboost-daal4py:TAG (runners/sagemaker/README.md)"
        )
    return pinned_image(image_uri, clients.ecr)


def check_tracking(uri: str) -> None:
    """SageMaker jobs run in AWS: a SQLite file or folder on this machine is out of their reach."""
    if not is_server_uri(uri):
        raise RunnerError(
            f"MLFLOW_TRACKING_URI is {redact_uri(uri)}: SageMaker jobs cannot reach a file on this machine; "
            "start an MLflow server they reach (mlflow/README.md) and export MLFLOW_TRACKING_URI=https://HOST"
        )


def preflight(config: SageMakerConfig, clients: AwsClients, tracking_uri: str) -> str:
    """Every check, in order; returns the step image pinned by digest for the definition."""
    account = check_credentials(clients, config.region)
    check_role(clients, config.role_arn, account, "--role")
    if config.job_role_arn:
        check_role(clients, config.job_role_arn, account, "--job-role")
    check_bucket(clients, config.bucket, config.region)
    image = check_image(clients, config.image_uri, account, config.region)
    check_tracking(tracking_uri)
    return image
