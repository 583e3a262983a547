"""MLflow credentials reach SageMaker steps through Secrets Manager, and the job role reads only them.

moto in server mode, over HTTP, stands in for Secrets Manager and IAM (with its IAM enforcement on):
the job role's policy file (runners/sagemaker/iam/job-role-policy.json, rendered for moto's account)
is attached to a user whose keys the shim's resolver uses. moto evaluates IAM for Secrets Manager
actions against the resource "*" only, so here it proves the action: the job policy without its
secret statement is refused, and the secret is read with it. *Which* secret the role may read (that
one ARN and no other) is checked by the policy linter's IAM matching (scripts/lint_policies.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker import secret_env
from tests.faults.test_faults import _reset_auth
from tests.paths import REPO_ROOT
from tests.servers import running_moto

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's account
PASSWORD = "s3cr3t-pa55word-for-the-job"  # a test value, not a secret


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    yield from running_moto()


def _client(service: str, endpoint: str, keys: dict[str, str] | None = None) -> object:
    keys = keys or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **keys)


@pytest.fixture(scope="module")
def job_keys(moto_endpoint: str) -> dict[str, dict[str, str]]:
    """Keys of a user holding exactly the job role's policy; the secrets it may and may not read."""
    sm = _client("secretsmanager", moto_endpoint)
    # moto's state is per process, shared by every moto server of an xdist worker: another module
    # (test_mlflow_service) may have made a secret of the same name.
    for name in ("kubesage/mlflow", "prod/database"):
        with contextlib.suppress(sm.exceptions.ResourceNotFoundException):  # type: ignore[attr-defined]
            sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)  # type: ignore[attr-defined]
    created = sm.create_secret(
        Name="kubesage/mlflow", SecretString=json.dumps({"username": "ci", "password": PASSWORD})
    )  # type: ignore[attr-defined]
    sm.create_secret(Name="prod/database", SecretString=json.dumps({"password": "other"}))  # type: ignore[attr-defined]
    policy = (REPO_ROOT / "runners/sagemaker/iam/job-role-policy.json").read_text(encoding="utf-8")
    for placeholder, value in {
        "MLFLOW_SECRET_ARN": created["ARN"], "ACCOUNT_ID": ACCOUNT, "REGION": "us-east-1", "BUCKET": "b",
        "PREFIX": "kubesage",
    }.items():  # fmt: skip
        policy = policy.replace(placeholder, value)
    iam = _client("iam", moto_endpoint)
    keys = {}
    document = json.loads(policy)
    without = [s for s in document["Statement"] if s["Action"] != "secretsmanager:GetSecretValue"]
    assert len(without) == len(document["Statement"]) - 1, "the job policy has one statement for its secret"
    # moto matches the resource "*": the statement's own ARN is what the policy linter checks.
    granted = [{**s, "Resource": "*"} if s not in without else s for s in document["Statement"]]
    for user, statements in {"job": granted, "job-without-secret": without}.items():
        iam.create_user(UserName=user)  # type: ignore[attr-defined]
        iam.put_user_policy(  # type: ignore[attr-defined]
            UserName=user, PolicyName="job", PolicyDocument=json.dumps({**document, "Statement": statements})
        )
        access = iam.create_access_key(UserName=user)["AccessKey"]  # type: ignore[attr-defined]
        keys[user] = {"aws_access_key_id": access["AccessKeyId"], "aws_secret_access_key": access["SecretAccessKey"]}
    return keys


@pytest.fixture
def enforced(moto_endpoint: str) -> Iterator[None]:
    previous = _reset_auth(moto_endpoint, "0")
    try:
        yield
    finally:
        _reset_auth(moto_endpoint, previous)


def test_the_job_role_needs_its_secret_statement_to_read_the_credentials(
    moto_endpoint: str, job_keys: dict[str, dict[str, str]], enforced: None
) -> None:
    client = _client("secretsmanager", moto_endpoint, job_keys["job"])
    values = secret_env.resolve(secret_env.mlflow_secret_env("kubesage/mlflow"), client)
    assert values == {"MLFLOW_TRACKING_USERNAME": "ci", "MLFLOW_TRACKING_PASSWORD": PASSWORD}  # no token: optional
    refused = _client("secretsmanager", moto_endpoint, job_keys["job-without-secret"])
    with pytest.raises(RunnerError) as caught:
        secret_env.resolve(secret_env.mlflow_secret_env("kubesage/mlflow"), refused)
    message = str(caught.value)
    assert message.startswith("cannot read secret 'kubesage/mlflow' for MLFLOW_TRACKING_PASSWORD (")
    assert "the job role needs secretsmanager:GetSecretValue on it" in message and PASSWORD not in message


def test_the_policy_linter_allows_the_job_role_that_one_secret_only() -> None:
    from scripts.lint_policies import MLFLOW_SECRET_ARN, OTHER_SECRETS, may_allow, render

    policy = json.loads(render((REPO_ROOT / "runners/sagemaker/iam/job-role-policy.json").read_text(encoding="utf-8")))
    assert may_allow(policy, "secretsmanager:GetSecretValue", MLFLOW_SECRET_ARN)
    assert not any(may_allow(policy, "secretsmanager:GetSecretValue", other) for other in OTHER_SECRETS)
    assert not may_allow(policy, "secretsmanager:ListSecrets", "*")


def test_a_missing_key_or_secret_is_named_never_a_value(
    moto_endpoint: str, job_keys: dict[str, dict[str, str]]
) -> None:
    client = _client("secretsmanager", moto_endpoint)
    with pytest.raises(RunnerError, match="secret 'kubesage/mlflow' has no key 'api' \\(wanted for API_KEY\\)"):
        secret_env.resolve({"API_KEY": secret_env.SecretRef(secret="kubesage/mlflow", key="api")}, client)
    with pytest.raises(RunnerError, match="cannot read secret 'nope' for X \\(ResourceNotFoundException\\)"):
        secret_env.resolve({"X": secret_env.SecretRef(secret="nope", key="k")}, client)


def test_the_shim_gives_the_task_the_secret_and_prints_nothing_of_it(
    moto_endpoint: str, job_keys: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """The shim's start, in a process of its own with the environment a job gets: the values reach the
    child's environment (what the component's MLflow client reads) and no output line."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))},
        "AWS_ACCESS_KEY_ID": job_keys["job"]["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": job_keys["job"]["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_endpoint,
        secret_env.ENV_SECRET_ENV: secret_env.encode(secret_env.mlflow_secret_env("kubesage/mlflow")),
    }
    probe = (
        "import os, sys; from kubesage.runners.sagemaker import shim, secret_env;"
        "values = secret_env.resolve_environment(os.environ, shim._secrets_client);"
        "print(sorted(values)); sys.exit(0 if values['MLFLOW_TRACKING_PASSWORD'] == sys.argv[1] else 3)"
    )
    done = subprocess.run([sys.executable, "-c", probe, PASSWORD], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MLFLOW_TRACKING_PASSWORD', 'MLFLOW_TRACKING_USERNAME']"
    assert PASSWORD not in done.stdout + done.stderr
