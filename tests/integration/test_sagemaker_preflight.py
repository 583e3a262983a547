"""`--runner sagemaker` checks before it starts (issue 28 item 4), against moto in server mode over HTTP.

Each failure is one line saying what to do, raised before the MLflow parent run opens, so nothing is
recorded. What moto cannot show: real IAM and S3 denials for these calls (it allows everything), STS's
answers to expired or forged keys; those messages are mapped from AWS's documented error codes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesage.errors import RunnerError
from kubesage.runners.registry import load_pipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.preflight import AwsClients, preflight
from kubesage.runners.sagemaker.runner import SageMakerRunner
from kubesage.util.boto_sessions import new_boto3_session
from tests.integration.cli_helpers import run_cli

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
BUCKET = "kubesage-preflight"
OTHER_REGION_BUCKET = "kubesage-preflight-eu"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/kubesage-preflight-pipeline"
UNTRUSTING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/kubesage-preflight-lambda"
REPOSITORY = "kubesage/preflight-image"
SERVER_URI = "http://mlflow.example.internal:5000"
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "churn.txt"


def _trust(service: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture(scope="module")
def account(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """The account a user set up from runners/sagemaker/README.md: bucket, roles, the image in ECR.

    moto keeps one state per process whatever the server, so the names are this module's own."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
    )
    try:
        session = new_boto3_session(region_name=REGION)
        s3 = session.client("s3", endpoint_url=moto_endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.create_bucket(Bucket=OTHER_REGION_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        iam = session.client("iam", endpoint_url=moto_endpoint)
        for name, service in (("kubesage-preflight-pipeline", "sagemaker"), ("kubesage-preflight-lambda", "lambda")):
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust(f"{service}.amazonaws.com"))
        ecr = session.client("ecr", endpoint_url=moto_endpoint)
        uri = ecr.create_repository(repositoryName=REPOSITORY)["repository"]["repositoryUri"]
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                               "config": {"digest": "sha256:" + "2" * 64, "size": 1}, "layers": []})  # fmt: skip
        digest = ecr.put_image(repositoryName=REPOSITORY, imageManifest=manifest, imageTag="v1")["image"]["imageId"][
            "imageDigest"
        ]
        yield {"endpoint": moto_endpoint, "image": f"{uri}:v1", "pinned": f"{uri}@{digest}", "repository": uri}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _config(account: dict[str, str], **update: Any) -> SageMakerConfig:
    values = {"role_arn": ROLE, "bucket": BUCKET, "region": REGION, "image_uri": account["image"], **update}
    return SageMakerConfig.model_validate(values)


def _check(account: dict[str, str], uri: str = SERVER_URI, **update: Any) -> str:
    config = _config(account, **update)
    return preflight(config, AwsClients.create(config.region, account["endpoint"]), uri)


def test_a_ready_account_passes_and_the_image_tag_is_pinned(account: dict[str, str]) -> None:
    assert _check(account) == account["pinned"]
    assert _check(account, image_uri=account["pinned"]) == account["pinned"]  # a digest is used as given


PLACEHOLDER_ROLE = SageMakerConfig().role_arn
PLACEHOLDER_IMAGE = SageMakerConfig().image_uri
PROBLEMS = [
    pytest.param({"role_arn": PLACEHOLDER_ROLE}, f"no execution role given: pass --role arn:aws:iam::{ACCOUNT}:role/",
                 id="placeholder-role"),
    pytest.param({"role_arn": "arn:aws:iam::999999999999:role/x"},
                 f"is in account 999999999999, but the credentials are of account {ACCOUNT}", id="other-account-role"),
    pytest.param({"role_arn": f"arn:aws:iam::{ACCOUNT}:role/nope"},
                 f"the role nope does not exist in account {ACCOUNT}: create it", id="missing-role"),
    pytest.param({"role_arn": UNTRUSTING_ROLE}, "kubesage-preflight-lambda does not trust sagemaker.amazonaws.com",
                 id="untrusting-role"),
    pytest.param({"job_role_arn": f"arn:aws:iam::{ACCOUNT}:role/nojob"},
                 "the role nojob does not exist .* or pass --job-role ARN", id="missing-job-role"),
    pytest.param({"bucket": "kubesage-no-such-bucket"},
                 "bucket kubesage-no-such-bucket does not exist: create it .*--region us-east-1", id="missing-bucket"),
    pytest.param({"bucket": OTHER_REGION_BUCKET},
                 "is in eu-west-1, but the pipeline runs in us-east-1: .*--region eu-west-1", id="bucket-elsewhere"),
    pytest.param({"image_uri": PLACEHOLDER_IMAGE},
                 rf"no step image given: push .* --image {ACCOUNT}\.dkr\.ecr\.us-east-1", id="placeholder-image"),
    pytest.param({"image_uri": "kubesage/xgboost-daal4py:v1"},
                 "is a mutable tag outside ECR; pass --image REPOSITORY@sha256", id="tag-outside-ecr"),
    pytest.param({"image_uri": "{repository}:v9"}, "is not in ECR; push it", id="tag-not-pushed"),
]  # fmt: skip


@pytest.mark.parametrize(("update", "message"), PROBLEMS)
def test_each_problem_is_one_line_saying_what_to_do(
    account: dict[str, str], update: dict[str, str], message: str
) -> None:
    update = {key: value.format(repository=account["repository"]) for key, value in update.items()}
    with pytest.raises(RunnerError, match=message) as caught:
        _check(account, **update)
    assert "\n" not in str(caught.value)


def test_a_sqlite_store_is_refused_since_jobs_in_aws_cannot_reach_it(account: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="SageMaker jobs cannot reach a file on this machine"):
        _check(account, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_an_unreachable_region_names_the_region(account: dict[str, str]) -> None:
    config = _config(account, region="xx-nowhere-1")
    # No endpoint override: botocore builds sts.xx-nowhere-1.amazonaws.com, which does not resolve here.
    with pytest.raises(RunnerError, match=r"cannot reach AWS STS in region 'xx-nowhere-1' .* check --region"):
        preflight(config, AwsClients.create(config.region), SERVER_URI)


def test_a_failed_preflight_records_nothing(
    account: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runner.run: the checks run before the parent run opens, so the store is never even created."""
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    runner = SageMakerRunner(_config(account, bucket="kubesage-no-such-bucket"), endpoint_url=account["endpoint"])
    lines: list[str] = []
    with pytest.raises(RunnerError, match="the bucket kubesage-no-such-bucket does not exist"):
        runner.run(pipeline, {"input_data": str(DATA)}, progress=lines.append)
    assert lines == []
    assert not store.exists()
    s3 = new_boto3_session(region_name=REGION).client("s3", endpoint_url=account["endpoint"])
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0  # nothing uploaded either


def test_without_credentials_the_cli_says_so_in_one_line_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: no AWS credentials anywhere. One line naming sagemaker-local, exit 1, no MLflow store."""
    store = tmp_path / "mlflow.db"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = ["run", "customer_churn", "--runner", "sagemaker", "--param", f"input_data={DATA}"]
    result = run_cli(args, tmp_path, f"sqlite:///{store}")
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [
        "error: no AWS credentials found (environment, ~/.aws, SSO or instance role): run `aws configure` or "
        "`aws sso login`, or export AWS_PROFILE; without an AWS account, `--runner sagemaker-local` runs the same "
        "definition on this machine (Docker)"
    ]
    assert not store.exists()
