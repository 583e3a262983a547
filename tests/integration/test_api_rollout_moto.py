"""Guarded updates against moto in server mode over HTTP: a rollback reported, a promotion, `kubesage rollback`.

What is real here: boto3 over HTTP to one moto server (CloudFormation change sets, S3, SageMaker model
packages, IAM, CloudWatch alarms and `set_alarm_state`), MLflow's registry in a SQLite store, the
deploy code end to end. What is simulated, and why:

- moto's CloudFormation skips `AWS::CloudWatch::Alarm`, so the template's two alarms are put into
  moto's CloudWatch with `put_metric_alarm` from the rendered template's own properties.
- moto has no UpdateEndpoint: its CloudFormation replaces an updated endpoint at once (serving the
  new config) and ignores DeploymentConfig. For the rolled-back update, `GuardedUpdateStandIn` answers
  DescribeEndpoint as SageMaker does during a blue/green update that an alarm stops: `Updating` on the
  current config, `Updating` again (the test sets the 5xx alarm to ALARM in moto then, as CloudWatch
  would when the canary's 5xx rate crosses the threshold), `RollingBack`, then `InService` on the OLD
  config. Everything else it passes to moto. The promotion and the rollback command use moto's own
  answers (the endpoint serves the new config).
- Only AWS can show the traffic shift, SageMaker reading the alarms, and CloudFormation's
  UPDATE_ROLLBACK_COMPLETE after a rolled-back endpoint update.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from kubesage.deploy.live import LIVE_ALIAS, LIVE_KEY, MODEL_KEY, PREVIOUS_MODEL_KEY, PREVIOUS_PACKAGE_KEY
from kubesage.deploy.stack import DeployRequest, RolledBackError, alarm_names, deploy
from kubesage.deploy.strategy import Strategy
from kubesage.deploy.template import load_template, render
from tests.integration.api_helpers import registered_model_dir
from tests.integration.deploy_helpers import aws_against_moto, create_package, upload_model

pytestmark = pytest.mark.integration
REGION = "us-east-1"
BUCKET = "kubesage-rollout"
ROLE = "arn:aws:iam::123456789012:role/service-role/rollout-execution"  # a path: the policy names the role
STACK = "guarded"
MODEL_NAME = "customer-churn-rollout"


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    return aws_against_moto(moto_endpoint, monkeypatch, REGION, BUCKET, ROLE)


@pytest.fixture(scope="module")
def model_dir(trained_model: Path, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_model_dir(trained_model, prepared, tmp_path_factory.mktemp("registered"), threshold=0.4)


def _register_version(model_dir: Path) -> str:
    """A version in MLflow's registry with the digest the register step records (and the model's files)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name='{MODEL_NAME}'"):
        client.create_registered_model(MODEL_NAME)
    experiment = client.get_experiment_by_name("rollout") or client.get_experiment(client.create_experiment("rollout"))
    run = client.create_run(experiment.experiment_id)
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    digest = hashlib.sha256((model_dir / "xgboost-model.ubj").read_bytes()).hexdigest()
    version = client.create_model_version(
        MODEL_NAME, f"{run.info.artifact_uri}/model", run.info.run_id, tags={"kubesage.model_sha256": digest}
    )
    return f"models:/{MODEL_NAME}/{version.version}"


def _put_template_alarms(session: boto3.Session) -> list[str]:
    """The template's two alarms into moto's CloudWatch (moto's CloudFormation skips them)."""
    cloudwatch = session.client("cloudwatch")
    resources = render(load_template())["Resources"]
    names = alarm_names(STACK)
    for logical, name in zip(("Endpoint5xxAlarm", "EndpointLatencyAlarm"), names, strict=True):
        props = resources[logical]["Properties"]
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace=props["Namespace"],
            MetricName=props["MetricName"],
            Dimensions=[{"Name": "EndpointName", "Value": STACK}, {"Name": "VariantName", "Value": "AllTraffic"}],
            Statistic=props["Statistic"],
            Period=props["Period"],
            EvaluationPeriods=props["EvaluationPeriods"],
            Threshold=0.05 if logical == "Endpoint5xxAlarm" else 1_000_000.0,
            ComparisonOperator=props["ComparisonOperator"],
            TreatMissingData=props["TreatMissingData"],
        )
    return names


class GuardedUpdateStandIn:
    """SageMaker's DescribeEndpoint during a blue/green update that an alarm rolls back (moto has no
    UpdateEndpoint); every other call goes to moto. See the module docstring."""

    def __init__(self, moto: Any, cloudwatch: Any, alarm: str) -> None:
        self.moto = moto
        self.cloudwatch = cloudwatch
        self.alarm = alarm
        self.old_config: str | None = None
        self.script = ["Updating", "Updating", "RollingBack", "InService"]
        self.calls = 0

    def describe_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        real: dict[str, Any] = self.moto.describe_endpoint(**kwargs)
        self.calls += 1
        if self.old_config is None:  # deploy reads the endpoint once before it executes the change set
            self.old_config = real["EndpointConfigName"]
            return real
        step = min(self.calls - 2, len(self.script) - 1)
        if step == 1:  # during the canary's bake: CloudWatch sees the new fleet's 5xx rate cross 5%
            self.cloudwatch.set_alarm_state(
                AlarmName=self.alarm, StateValue="ALARM", StateReason="Threshold Crossed: 1 datapoint [0.5] > 0.05"
            )
        return {**real, "EndpointConfigName": self.old_config, "EndpointStatus": self.script[step]}

    def describe_endpoint_config(self, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.moto.describe_endpoint_config(**kwargs)
        return result

    def describe_model(self, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.moto.describe_model(**kwargs)
        return result


def _metadata(session: boto3.Session, arn: str) -> dict[str, str]:
    package = session.client("sagemaker").describe_model_package(ModelPackageName=arn)
    return dict(package.get("CustomerMetadataProperties") or {})


def _live_version() -> str:
    from mlflow import MlflowClient

    return str(MlflowClient().get_model_version_by_alias(MODEL_NAME, LIVE_ALIAS).version)


def test_an_alarm_during_a_canary_update_is_a_reported_rollback_then_promotion_and_rollback_command(
    aws: boto3.Session, model_dir: Path, mlflow_sqlite: str
) -> None:
    first, second = _register_version(model_dir), _register_version(model_dir)
    package_1 = create_package(aws, "Approved", upload_model(aws, BUCKET, model_dir, "runs/r1/model.tar.gz"))
    package_2 = create_package(aws, "Approved", upload_model(aws, BUCKET, model_dir, "runs/r2/model.tar.gz"))
    request = DeployRequest(
        stack_name=STACK, model_package_arn=package_1, model=first, execution_role_arn=ROLE, bucket=BUCKET,
        region=REGION, strategy=Strategy("canary", canary_percent=20, bake_seconds=300),
    )  # fmt: skip

    # The first deploy creates the stack; the registry records version 1 as live on both sides.
    created = deploy(request)
    assert created.status == "CREATE_COMPLETE" and created.serving_package == package_1
    assert _metadata(aws, package_1)[LIVE_KEY] == STACK and _metadata(aws, package_1)[MODEL_KEY] == first
    assert _live_version() == "1"
    # The execution role may read this stack's two alarms, and only those (what SageMaker needs).
    iam = aws.client("iam")
    assert iam.list_role_policies(RoleName="rollout-execution")["PolicyNames"] == [f"{STACK}-describe-rollback-alarms"]
    statement = iam.get_role_policy(RoleName="rollout-execution", PolicyName=f"{STACK}-describe-rollback-alarms")[
        "PolicyDocument"
    ]
    assert "cloudwatch:DescribeAlarms" in str(statement) and f"alarm:{STACK}-endpoint-5xx-rate" in str(statement)
    cloudwatch = aws.client("cloudwatch")
    assert cloudwatch.describe_alarms(AlarmNames=alarm_names(STACK))["MetricAlarms"] == []  # moto skipped them
    five_xx, latency = _put_template_alarms(aws)

    cfn = aws.client("cloudformation")
    stack_before = cfn.describe_stacks(StackName=STACK)["Stacks"][0]

    # Version 2 through a canary that trips the 5xx alarm: reported, non-zero, registry untouched.
    stand_in = GuardedUpdateStandIn(aws.client("sagemaker"), cloudwatch, five_xx)
    messages: list[str] = []
    with pytest.raises(RolledBackError) as rolled:
        deploy(
            dataclasses.replace(request, model_package_arn=package_2, model=second),
            progress=messages.append,
            sagemaker=stand_in,
            sleep=lambda _: None,
        )
    report = rolled.value.result
    assert rolled.value.exit_code != 0
    assert report.rolled_back and report.status == "ROLLED_BACK"
    assert report.endpoint_config == stand_in.old_config
    assert [a.name for a in report.alarms] == [five_xx]
    assert "Threshold Crossed" in report.alarms[0].reason
    message = str(rolled.value)
    assert "\n" not in message
    assert message.startswith(f"the update of {STACK} rolled back: endpoint {report.endpoint_name} serves its ")
    assert f"previous config {stand_in.old_config} ({package_1}), not {package_2}" in message
    assert f"alarm {five_xx} fired: Threshold Crossed" in message
    assert message.endswith("the registry still records the previous version as live")
    assert latency not in message
    states = [m for m in messages if m.startswith(f"endpoint {report.endpoint_name}: ")]
    assert [s.split(": ")[1].split(" ")[0] for s in states] == ["Updating", "RollingBack", "InService"]
    assert LIVE_KEY not in _metadata(aws, package_2)
    assert _metadata(aws, package_1)[LIVE_KEY] == STACK
    assert _live_version() == "1"
    cloudwatch.set_alarm_state(AlarmName=five_xx, StateValue="OK", StateReason="recovered")
    # On AWS, CloudFormation then rolls the stack back to its previous parameters (UPDATE_ROLLBACK_COMPLETE);
    # moto applied the update instead, so the test puts the previous parameters back as that rollback would.
    cfn.update_stack(
        StackName=STACK, UsePreviousTemplate=True, Parameters=stack_before["Parameters"],
        Capabilities=["CAPABILITY_IAM"], Tags=stack_before["Tags"],
    )  # fmt: skip

    # Version 2 again, healthy: moto's endpoint serves the new config, so it is promoted and recorded.
    promoted = deploy(dataclasses.replace(request, model_package_arn=package_2, model=second))
    assert not promoted.rolled_back and promoted.serving_package == package_2
    assert promoted.endpoint_config != stand_in.old_config
    assert promoted.previous_package == package_1
    meta_2 = _metadata(aws, package_2)
    assert (meta_2[LIVE_KEY], meta_2[PREVIOUS_PACKAGE_KEY], meta_2[PREVIOUS_MODEL_KEY]) == (STACK, package_1, first)
    assert LIVE_KEY not in _metadata(aws, package_1)
    assert _live_version() == "2"

    # `kubesage rollback` returns to version 1 through the same path, and the records follow.
    from kubesage.cli import main

    # The same strategy as the deploys. (With another one moto re-creates the endpoint before its new config:
    # it updates changed resources in its own order, not by dependency.)
    rollout = ["--canary-percent", "20", "--bake-seconds", "300"]
    done = CliRunner().invoke(
        main, ["rollback", "--stack-name", STACK, "--region", REGION, *rollout, "--output", "json"]
    )
    assert done.exit_code == 0, done.output
    assert f"rolling {STACK} back to {package_1} ({first})" in done.stderr
    assert f'"serving_package": "{package_1}"' in done.stdout
    assert _metadata(aws, package_1)[LIVE_KEY] == STACK
    assert _metadata(aws, package_1)[PREVIOUS_PACKAGE_KEY] == package_2
    assert LIVE_KEY not in _metadata(aws, package_2)
    assert _live_version() == "1"
    params = aws.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in params}["ModelPackageArn"] == package_1


def test_out_of_range_options_are_refused_before_anything_is_sent(aws: boto3.Session) -> None:
    from kubesage.cli import main

    args = ["deploy", "--model-package", "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1", "--model",
            "models:/m/1", "--execution-role", ROLE, "--bucket", BUCKET, "--stack-name", "refused-range"]  # fmt: skip
    done = CliRunner().invoke(main, [*args, "--strategy", "canary", "--canary-percent", "60"])
    assert done.exit_code == 2
    assert done.stderr.strip() == "error: --canary-percent 60 is out of range: a canary is 1-50% of the capacity"
    stacks = aws.client("cloudformation").list_stacks()["StackSummaries"]
    assert "refused-range" not in [s["StackName"] for s in stacks]
