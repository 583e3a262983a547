"""`kubesage deploy` and `kubesage approve` against moto in server mode, over HTTP through boto3.

What stands in for what: moto plays CloudFormation, S3, SageMaker, Lambda, IAM, Logs and API Gateway.
It creates and describes the stack's resources, which is what these tests assert. It silently skips
AWS::ApiGateway::Stage, ApiKey, UsagePlan and UsagePlanKey while reporting CREATE_COMPLETE, so those
four (throttling, access logging, tracing, the key and the plan) are asserted from the rendered
template itself, not from moto. moto's API Gateway never invokes a Lambda: the request path is tested
through the local API front (test_api_local.py). Real API keys, throttling and IAM evaluation are
verified only on paper.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from kubesage.deploy.stack import DeployRequest, approve_model_package, deploy
from kubesage.deploy.template import load_template, render
from kubesage.errors import DeployError
from tests.integration.api_helpers import registered_model_dir
from tests.integration.deploy_helpers import aws_against_moto, create_package, upload_model

pytestmark = pytest.mark.integration
REGION = "us-east-1"
BUCKET = "kubesage-artifacts"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    return aws_against_moto(moto_endpoint, monkeypatch, REGION, BUCKET, ROLE)


@pytest.fixture(scope="module")
def model_dir(trained_model: Path, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_model_dir(trained_model, prepared, tmp_path_factory.mktemp("registered"), threshold=0.4)


PACKAGED_MODEL_URL = f"s3://{BUCKET}/runs/e1/model.tar.gz"  # what the register step's package names


def _request(package: str, model_dir: Path, stack: str) -> DeployRequest:
    return DeployRequest(
        stack_name=stack, model_package_arn=package, model=str(model_dir), execution_role_arn=ROLE, bucket=BUCKET,
        region=REGION,
    )  # fmt: skip


def test_refuses_a_package_that_is_not_approved_then_approve_lets_it_through(
    aws: boto3.Session, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    package = create_package(aws, "PendingManualApproval", PACKAGED_MODEL_URL)
    with pytest.raises(DeployError, match="PendingManualApproval, not Approved.*kubesage approve"):
        deploy(_request(package, model_dir, "refused"))
    cfn = aws.client("cloudformation")
    assert "refused" not in [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]]
    assert approve_model_package(package, region=REGION) == "Approved"


def test_deploy_creates_the_stack_and_its_resources(
    aws: boto3.Session, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    upload_model(aws, BUCKET, model_dir, "runs/e1/model.tar.gz")
    package = create_package(aws, "Approved", PACKAGED_MODEL_URL)
    messages: list[str] = []
    result = deploy(_request(package, model_dir, "churn-api"), progress=messages.append)
    assert result.status == "CREATE_COMPLETE"
    assert result.code_uploaded
    assert any("change set" in m for m in messages)

    # The function: code from S3 by content hash, the endpoint's name in its environment.
    lam = aws.client("lambda")
    function = lam.get_function(FunctionName="churn-api-predict")
    config = function["Configuration"]
    assert config["Handler"] == "kubesage.lambda_runtime.handler.handler"
    assert config["Runtime"] == "python3.11"
    assert config["Timeout"] == 30
    endpoint_name = config["Environment"]["Variables"]["ENDPOINT_NAME"]
    assert endpoint_name == result.endpoint_name
    key = result.code_s3_uri.removeprefix(f"s3://{BUCKET}/")
    head = aws.client("s3").head_object(Bucket=BUCKET, Key=key)
    assert head["Metadata"]["sha256"].startswith(key.split("api-")[1].removesuffix(".zip"))

    # The permission: API Gateway may invoke it for POST /predict on this API only.
    policy = json.loads(lam.get_policy(FunctionName="churn-api-predict")["Policy"])
    (statement,) = policy["Statement"]
    source_arn = statement["Condition"]["ArnLike"]["AWS:SourceArn"]
    assert source_arn.endswith("/*/POST/predict")
    apis = aws.client("apigateway").get_rest_apis()["items"]
    api = next(a for a in apis if a["name"] == "churn-api-api")
    assert f":{api['id']}/" in source_arn

    # The role: InvokeEndpoint on this endpoint's ARN only, plus its own logs; trust pinned to the account.
    iam = aws.client("iam")
    role_name = config["Role"].split("/")[-1]
    role = iam.get_role(RoleName=role_name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = trust if isinstance(trust, dict) else json.loads(trust)
    assert trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
    documents = {}
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document: Any = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        # moto returns inline policies created by CloudFormation as a Python repr string.
        documents[name] = document if isinstance(document, dict) else ast.literal_eval(document)
    invoke = documents["invoke-endpoint"]["Statement"][0]
    assert invoke["Action"] == "sagemaker:InvokeEndpoint"
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=endpoint_name)
    assert invoke["Resource"] == endpoint["EndpointArn"]
    logs = documents["own-logs"]["Statement"][0]
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert "/aws/lambda/churn-api-predict" in logs["Resource"]

    # The endpoint: from the approved package, with data capture of inputs and outputs.
    sagemaker = aws.client("sagemaker")
    endpoint_config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    capture = endpoint_config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/kubesage/data-capture"
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    variant = endpoint_config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.large"
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == package
    # The digest deploy verified travels to every serving instance, which checks it before loading.
    digest = hashlib.sha256((model_dir / "xgboost-model.ubj").read_bytes()).hexdigest()
    assert model["PrimaryContainer"]["Environment"] == {"KUBESAGE_MODEL_SHA256": digest}
    assert f"registered for {model_dir}: {digest}" in " ".join(messages)
    assert model["ExecutionRoleArn"] == ROLE

    # The API: POST /predict, key required, Lambda proxy integration to this function.
    gateway = aws.client("apigateway")
    resources = gateway.get_resources(restApiId=api["id"])["items"]
    predict = next(r for r in resources if r.get("path") == "/predict")
    method = gateway.get_method(restApiId=api["id"], resourceId=predict["id"], httpMethod="POST")
    assert method["apiKeyRequired"] is True
    assert method["methodIntegration"]["type"] == "AWS_PROXY"
    assert config["FunctionArn"] in method["methodIntegration"]["uri"]
    assert gateway.get_deployments(restApiId=api["id"])["items"]
    log_groups = {g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]}
    assert {"/aws/lambda/churn-api-predict", "/aws/apigateway/churn-api-access"} <= log_groups
    assert result.api_url == f"https://{api['id']}.execute-api.{REGION}.amazonaws.com/prod/predict"
    assert result.key_command.startswith("aws apigateway get-api-key --api-key ")

    # A second deploy of the same model and code changes nothing and uploads nothing.
    again = deploy(_request(package, model_dir, "churn-api"))
    assert not again.code_uploaded
    assert again.status in ("NO_CHANGES", "UPDATE_COMPLETE")


def test_a_tampered_model_artifact_is_refused_in_one_line(
    aws: boto3.Session, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package's model.tar.gz replaced after registration (issue 18 item 1): deploy refuses it."""
    monkeypatch.chdir(tmp_path)
    url = upload_model(aws, BUCKET, model_dir, "runs/e2/model.tar.gz", tamper=True)
    package = create_package(aws, "Approved", url)
    with pytest.raises(DeployError) as refused:
        deploy(_request(package, model_dir, "tampered"))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"model package {package}'s artifact {url} has sha256 ")
    assert message.endswith("the artifact changed after registration; refusing to deploy it")
    stacks = aws.client("cloudformation").list_stacks()["StackSummaries"]
    assert "tampered" not in [s["StackName"] for s in stacks]


def test_other_bytes_at_the_code_key_are_replaced_and_the_version_pinned(
    aws: boto3.Session, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zip's content-hash key proves nothing about its bytes (issue 18 item 2)."""
    monkeypatch.chdir(tmp_path)
    bucket = "kubesage-versioned"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    url = upload_model(aws, BUCKET, model_dir, "runs/e3/model.tar.gz")
    request = DeployRequest(
        stack_name="pinned", model_package_arn=create_package(aws, "Approved", url), model=str(model_dir),
        execution_role_arn=ROLE, bucket=bucket, region=REGION,
    )  # fmt: skip
    first = deploy(request)
    key = first.code_s3_uri.removeprefix(f"s3://{bucket}/")
    genuine = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the function")  # someone swaps the zip
    again = deploy(request)
    assert again.code_uploaded
    latest = s3.get_object(Bucket=bucket, Key=key)
    assert latest["Body"].read() == genuine
    stack = aws.client("cloudformation").describe_stacks(StackName="pinned")["Stacks"][0]
    pinned = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["CodeObjectVersion"]
    assert pinned == latest["VersionId"]


def test_a_package_and_a_version_of_different_executions_are_refused() -> None:
    """The package records its execution; the MLflow version too (issue 18 item 3)."""
    from kubesage.deploy.integrity import Recorded, check_same_execution

    ours = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/aaa"
    other = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/bbb"
    check_same_execution("pkg", {"kubesage:execution": ours}, Recorded("0" * 64, ours, "models:/m/3"))
    check_same_execution("pkg", {}, Recorded("0" * 64, None, "a directory"))
    with pytest.raises(DeployError, match=r"comes from execution .*/bbb, but models:/m/3 from .*/aaa; deploy"):
        check_same_execution("pkg", {"kubesage:execution": other}, Recorded("0" * 64, ours, "models:/m/3"))
    with pytest.raises(DeployError, match=r"\(none recorded\), but models:/m/3 from .*/aaa"):
        check_same_execution("pkg", {}, Recorded("0" * 64, ours, "models:/m/3"))


def test_what_moto_skips_is_asserted_from_the_template() -> None:
    """Stage, ApiKey, UsagePlan and UsagePlanKey: moto reports success but creates none of them."""
    template = render(load_template())
    resources = template["Resources"]
    (deployment_id,) = [k for k, v in resources.items() if v["Type"] == "AWS::ApiGateway::Deployment"]
    stage = resources["ApiStage"]["Properties"]
    assert stage["DeploymentId"] == {"Ref": deployment_id}
    assert stage["TracingEnabled"] is True
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in stage["AccessLogSetting"]["Format"]
    (setting,) = stage["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == {"Ref": "ThrottleRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ThrottleBurstLimit"}
    plan = resources["UsagePlan"]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "RestApi"}, "Stage": {"Ref": "ApiStage"}}]
    assert plan["Quota"] == {"Limit": {"Ref": "QuotaPerDay"}, "Period": "DAY"}
    assert plan["Throttle"] == {"RateLimit": {"Ref": "ThrottleRateLimit"}, "BurstLimit": {"Ref": "ThrottleBurstLimit"}}
    key = resources["UsagePlanKey"]["Properties"]
    assert key == {"KeyId": {"Ref": "ApiKey"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "UsagePlan"}}
    assert resources["ApiKey"]["Properties"]["Enabled"] is True
    assert resources["PredictMethod"]["Properties"]["ApiKeyRequired"] is True


def test_the_deployment_id_changes_when_a_method_changes() -> None:
    template = load_template()
    before = {k for k in render(template)["Resources"] if k.startswith("ApiDeployment")}
    template["Resources"]["PredictMethod"]["Properties"]["HttpMethod"] = "PUT"
    after = {k for k in render(template)["Resources"] if k.startswith("ApiDeployment")}
    template["Resources"]["Function"]["Properties"]["MemorySize"] = 512  # not deployed by the API
    unchanged = {k for k in render(template)["Resources"] if k.startswith("ApiDeployment")}
    assert before != after
    assert unchanged == after


def test_per_client_keys_are_issued_into_the_plan_listed_and_revoked(aws: boto3.Session) -> None:
    """Issue 18 item 8, through the CLI against moto's API Gateway API (keys, plans, plan keys).

    moto's CloudFormation skips the stack's UsagePlan, so the plan here is made with the API directly
    and passed as --usage-plan-id; the template's plan and its per-key limits are asserted above."""
    from click.testing import CliRunner

    from kubesage.cli import main

    gateway = aws.client("apigateway")
    plan = gateway.create_usage_plan(name="keys-plan", throttle={"rateLimit": 10.0, "burstLimit": 20})["id"]
    runner = CliRunner()
    args = ["--stack-name", "keys", "--region", REGION]
    issued = runner.invoke(main, ["api-key", "issue", "acme", *args, "--usage-plan-id", plan])
    assert issued.exit_code == 0, issued.output
    value = issued.stdout.strip()
    (key,) = [k for k in gateway.get_api_keys(includeValues=True)["items"] if k["name"] == "keys-client-acme"]
    assert key["value"] == value and key["enabled"] is True
    assert key["tags"] == {"kubesage:stack": "keys", "kubesage:client": "acme"}
    assert [k["id"] for k in gateway.get_usage_plan_keys(usagePlanId=plan)["items"]] == [key["id"]]
    again = runner.invoke(main, ["api-key", "issue", "acme", *args, "--usage-plan-id", plan])
    assert again.exit_code == 1
    assert "client 'acme' already has a key (keys-client-acme); revoke it first" in again.stderr
    assert runner.invoke(main, ["api-key", "issue", "beta", *args, "--usage-plan-id", plan]).exit_code == 0
    listed = runner.invoke(main, ["api-key", "list", *args])
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["acme", "beta"]
    assert value not in listed.stdout
    revoked = runner.invoke(main, ["api-key", "revoke", "acme", *args])
    assert revoked.exit_code == 0, revoked.output
    assert "keys-client-acme" not in [k["name"] for k in gateway.get_api_keys()["items"]]
    assert runner.invoke(main, ["api-key", "revoke", "acme", *args]).exit_code == 1
    bad = runner.invoke(main, ["api-key", "issue", "Bad Name", *args, "--usage-plan-id", plan])
    assert "use 1-63 lower-case letters" in bad.stderr
