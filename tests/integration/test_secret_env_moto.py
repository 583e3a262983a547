"""MLflow credentials and kfp-kubernetes secrets reach SageMaker steps through Secrets Manager, and the
job role reads only them.

moto in server mode, over HTTP, stands in for Secrets Manager and IAM (with its IAM enforcement on):
the job role's policy file (runners/sagemaker/iam/job-role-policy.json, rendered for moto's account)
is attached to a user whose keys the shim's resolver uses. moto evaluates IAM for Secrets Manager
actions against the resource "*" only, so here it proves the action: the job policy without its
secret statement is refused, and the secret is read with it. *Which* secret the role may read (that
one ARN and no other) is checked by the policy linter's IAM matching (scripts/lint_policies.py).

A compiled kfp-kubernetes pipeline (`use_secret_as_env` + `use_secret_as_volume` + a ConfigMap) runs
through the real shim, in a process of its own, with the environment its definition gives the job:
the component gets the secret as env and as a 0600 file, and a known secret value is searched for in
the definition, the task specs, the shim's output and outputs.json. The job's /opt/ml and the mount
path are moved under a temporary folder (this is not a container), and the shim runs as this user.
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
from kubesage.runners.sagemaker import secret_env, secret_files
from tests.faults.test_faults import _reset_auth
from tests.paths import REPO_ROOT
from tests.servers import running_moto

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's account
PASSWORD = "s3cr3t-pa55word-for-the-job"  # a test value, not a secret
TOKEN = "t0ken-only-the-task-may-see-0451"  # likewise: the value searched for in what the compiler and shim wrote


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


@pytest.fixture(scope="module")
def api_token_secret(moto_endpoint: str) -> str:
    """`prod/api-token` holding {"token": TOKEN}, made afresh (moto's state is per worker process)."""
    sm = _client("secretsmanager", moto_endpoint)
    with contextlib.suppress(sm.exceptions.ResourceNotFoundException):  # type: ignore[attr-defined]
        sm.delete_secret(SecretId="prod/api-token", ForceDeleteWithoutRecovery=True)  # type: ignore[attr-defined]
    sm.create_secret(Name="prod/api-token", SecretString=json.dumps({"token": TOKEN}))  # type: ignore[attr-defined]
    return "prod/api-token"


def test_a_compiled_kubernetes_secret_reaches_the_task_as_env_and_file_and_nowhere_else(
    moto_endpoint: str, api_token_secret: str, tmp_path: Path
) -> None:
    import hashlib

    from kfp import compiler

    from kubesage.runners.sagemaker.config import SageMakerConfig
    from tests.corpus.sagemaker.kubernetes import k8s_secrets_env_and_file
    from tests.unit.runners.sagemaker.ir_file import compile_file

    ir = tmp_path / "p.yaml"
    compiler.Compiler().compile(k8s_secrets_env_and_file, str(ir))
    config = SageMakerConfig(
        secret_map={"api-token": api_token_secret},
        config_maps={"settings": {"level": "INFO"}},
        secrets_endpoint_url=moto_endpoint,
    )
    compiled = compile_file(ir, config)
    definition = compiled.definition_json()
    (step,) = compiled.definition["Steps"]
    (body,) = compiled.assets.values()
    mount, ml = str(tmp_path / "mnt" / "api-token"), str(tmp_path / "ml")
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    # where a job has /opt/ml and the mount path, this test has its temporary folder
    spec_body = body.decode().replace("/opt/ml", ml).replace("/etc/api-token", mount).encode()
    (spec_dir / "use-token.json").write_bytes(spec_body)
    job_env = {
        k: v.replace("/etc/api-token", mount) for k, v in step["Arguments"]["Environment"].items() if isinstance(v, str)
    }  # fmt: skip  (pipeline parameters and execution variables stay unset)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_", "KUBESAGE_"))},
        **job_env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "KUBESAGE_STEP_USER": "root",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    argv = ["--task", "use-token", "--spec-dir", str(spec_dir), "--spec-sha256", hashlib.sha256(spec_body).hexdigest(),
            "--workdir", str(tmp_path / "w")]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "kubesage.runners.sagemaker.shim", *argv],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = (tmp_path / "ml" / "processing" / "output" / "kubesage-outputs" / "outputs.json").read_text()
    # the component saw the value as env and as a file (it returns only their digest) and the ConfigMap value
    digest = hashlib.sha256(f"{TOKEN}|{TOKEN}|INFO".encode()).hexdigest()
    assert json.loads(outputs)["parameters"]["Output"] == f"{digest} 600 own"
    secret_file = Path(mount) / "token"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert f"secret 'prod/api-token' -> {mount}: token (mode 0600)" in done.stdout
    for where, text in {
        "definition": definition, "task spec": body.decode(), "shim stdout": done.stdout,
        "shim stderr": done.stderr, "outputs.json": outputs,
    }.items():  # fmt: skip
        assert TOKEN not in text, f"the secret value is in the {where}"
    named = json.loads(step["Arguments"]["Environment"]["KUBESAGE_SECRET_ENV"])
    assert named["API_TOKEN"]["secret"] == api_token_secret


def test_secret_files_name_the_secret_never_a_value(moto_endpoint: str, api_token_secret: str, tmp_path: Path) -> None:
    client = _client("secretsmanager", moto_endpoint)
    missing = {str(tmp_path / "tls"): secret_files.SecretMount(secret="prod/absent", optional=True)}
    assert secret_files.write_files(missing, client, None) == [
        f"secret 'prod/absent' (optional) does not exist: nothing at {tmp_path / 'tls'}"
    ]
    assert not (tmp_path / "tls").exists()
    required = {str(tmp_path / "tls"): secret_files.SecretMount(secret="prod/absent")}
    with pytest.raises(RunnerError, match=f"cannot read secret 'prod/absent' for {tmp_path / 'tls'} "):
        secret_files.write_files(required, client, None)
    client.create_secret(Name="prod/odd-keys", SecretString=json.dumps({"../escape": TOKEN}))  # type: ignore[attr-defined]
    odd = {str(tmp_path / "odd"): secret_files.SecretMount(secret="prod/odd-keys")}
    with pytest.raises(RunnerError, match="secret 'prod/odd-keys' has a key that cannot be a file name") as caught:
        secret_files.write_files(odd, client, None)
    assert TOKEN not in str(caught.value)
    assert not (tmp_path / "escape").exists()
