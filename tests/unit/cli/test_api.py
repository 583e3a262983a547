"""`kubesage deploy` and `kubesage approve` report errors as every command does: redacted, and as one
JSON object on stdout with `--output json` (the same shape as `kubesage run --output json`)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kubesage.cli import main

SECRET = "s3cr3t-pw"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/1"


@pytest.fixture
def unreachable_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS calls go to a closed port through an endpoint URL that carries a password, and fail at once."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{SECRET}@127.0.0.1:9")


DEPLOY = [
    "deploy",
    "--model-package",
    ARN,
    "--model",
    "models:/customer-churn/1",
    "--execution-role",
    "arn:aws:iam::123456789012:role/sm",
    "--bucket",
    "b",
]


@pytest.mark.usefixtures("unreachable_aws")
@pytest.mark.parametrize(
    ("args", "call"),
    # approve reads the package first (its metadata is sent again with the approval)
    [(["approve", ARN], "sagemaker:DescribeModelPackage"), (DEPLOY, "sagemaker:DescribeModelPackage")],
    ids=["approve", "deploy"],
)
def test_json_errors_are_one_redacted_object_on_stdout(args: list[str], call: str) -> None:
    result = CliRunner().invoke(main, [*args, "--output", "json"])
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer == {"status": "error", "error": answer["error"], "kind": "DeployError"}
    assert answer["error"].startswith(f"AWS call {call} {ARN} failed: Could not connect")
    assert '"http://***@127.0.0.1:9/"' in answer["error"]
    assert result.stderr == f"error: {answer['error']}\n"
    assert SECRET not in result.output


@pytest.mark.usefixtures("unreachable_aws")
def test_text_errors_are_one_redacted_line_on_stderr() -> None:
    result = CliRunner().invoke(main, ["approve", ARN])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: AWS call sagemaker:DescribeModelPackage {ARN} failed")
    assert "http://***@127.0.0.1:9/" in result.stderr and SECRET not in result.stderr


def test_run_reports_its_errors_in_the_same_shape() -> None:
    result = CliRunner().invoke(
        main, ["run", "customer_churn", "--param", "input_data=/no/such/churn.csv", "--output", "json"]
    )
    assert result.exit_code == 2
    answer = json.loads(result.stdout)
    assert sorted(answer) == ["error", "kind", "status"]
    assert (answer["status"], answer["kind"]) == ("error", "DataError")
    assert result.stderr == f"error: {answer['error']}\n"
