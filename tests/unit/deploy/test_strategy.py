"""The rollout strategies: AWS's ranges (refused in one line), the rendered DeploymentConfig, cfn-lint on
the template rendered with each strategy, and the verifier's judgement of how an update ended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesage.deploy.rollout import Served, judge
from kubesage.deploy.strategy import STRATEGIES, Strategy, Thresholds, alarm_parameters, check, deployment_config
from kubesage.deploy.template import load_template, render
from kubesage.errors import ParameterError

ALARMS = ["a-5xx", "a-latency"]


@pytest.mark.parametrize(
    ("strategy", "thresholds", "message"),
    [
        (Strategy("canary", canary_percent=51), Thresholds(), "--canary-percent 51 is out of range: a canary is 1-50%"),
        (Strategy("canary", canary_percent=0), Thresholds(), "--canary-percent 0 is out of range"),
        (
            Strategy("linear", linear_percent=9),
            Thresholds(),
            "--linear-percent 9 is out of range: linear steps are 10-50%",
        ),
        (Strategy("linear", linear_percent=55), Thresholds(), "--linear-percent 55 is out of range"),
        (
            Strategy("rolling", rolling_percent=4),
            Thresholds(),
            "--rolling-percent 4 is out of range: rolling batches are 5-50%",
        ),
        (Strategy(bake_seconds=3601), Thresholds(), "--bake-seconds 3601 is out of range: SageMaker waits 0-3600 s"),
        (Strategy(bake_seconds=-1), Thresholds(), "--bake-seconds -1 is out of range"),
        (Strategy(termination_wait_seconds=4000), Thresholds(), "--termination-wait-seconds 4000 is out of range"),
        (
            Strategy(timeout_seconds=599),
            Thresholds(),
            "--timeout-seconds 599 is out of range: an update may take 600-28800 s",
        ),
        (Strategy(timeout_seconds=28801), Thresholds(), "--timeout-seconds 28801 is out of range"),
        (
            Strategy("canary", bake_seconds=600, timeout_seconds=1200),
            Thresholds(),
            "--timeout-seconds 1200 is out of range: it must exceed the update's waits (2 shifts x --bake-seconds 600 "
            "+ termination wait = 1200 s)",
        ),
        (Strategy(), Thresholds(max_5xx_rate=1.5), "--max-5xx-rate 1.5 is out of range: a rate is a fraction"),
        (Strategy(), Thresholds(max_latency_ms=0), "--max-latency-ms 0 is out of range: it must be above 0"),
        (Strategy("blue"), Thresholds(), "--strategy 'blue' is not one of all-at-once, canary, linear, rolling"),  # type: ignore[arg-type]
    ],
)
def test_out_of_range_options_are_refused_in_one_line_with_the_rule(
    strategy: Strategy, thresholds: Thresholds, message: str
) -> None:
    with pytest.raises(ParameterError) as refused:
        check(strategy, thresholds)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)
    assert refused.value.exit_code == 2


def test_the_edges_of_each_range_are_accepted() -> None:
    for strategy in (
        Strategy("canary", canary_percent=1, bake_seconds=0),
        Strategy("canary", canary_percent=50, bake_seconds=3600),
        Strategy("linear", linear_percent=10, bake_seconds=60),
        Strategy("linear", linear_percent=50),
        Strategy("rolling", rolling_percent=5, bake_seconds=60),
        Strategy("all-at-once", termination_wait_seconds=3600),
        Strategy("canary", bake_seconds=0, timeout_seconds=600),
    ):
        check(strategy, Thresholds(max_5xx_rate=0.0, max_latency_ms=0.1))


def test_the_deployment_configs_each_strategy_renders() -> None:
    canary = deployment_config(Strategy("canary", canary_percent=20, bake_seconds=300), ALARMS)
    assert canary == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 300,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
            },
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 1200,  # 2 bakes of 300 s + 600 s to start the new fleet
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a-5xx"}, {"AlarmName": "a-latency"}]},
    }
    linear = deployment_config(Strategy("linear", linear_percent=25, bake_seconds=600), ALARMS)["BlueGreenUpdatePolicy"]
    assert linear["TrafficRoutingConfiguration"]["LinearStepSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}
    assert linear["MaximumExecutionTimeoutInSeconds"] == 4 * 600 + 600
    at_once = deployment_config(Strategy("all-at-once"), ALARMS)["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert at_once == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}
    rolling = deployment_config(Strategy("rolling", rolling_percent=10, bake_seconds=2800), ALARMS)
    assert rolling["RollingUpdatePolicy"] == {
        "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 10},
        "WaitIntervalInSeconds": 2800,
        "MaximumExecutionTimeoutInSeconds": 28600,  # 10 x 2800 s + 600, just inside AWS's maximum...
    }
    capped = deployment_config(Strategy("rolling", rolling_percent=10, bake_seconds=2850), ALARMS)
    assert capped["RollingUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == 28800  # ...or capped at it
    with pytest.raises(ParameterError, match="must exceed the update's waits"):
        check(Strategy("rolling", rolling_percent=5, bake_seconds=1500))  # ...and 20 x 1500 s cannot fit
    assert alarm_parameters(Thresholds(0.02, 250)) == {"Max5xxRate": "0.02", "MaxModelLatencyMicroseconds": "250000"}


def test_the_template_rendered_with_each_strategy_passes_cfn_lint_and_carries_the_guardrails() -> None:
    from cfnlint.api import ConfigMixIn, Runner

    # One runner (its rules built once) for every rendering; as lambda/lint.sh runs cfn-lint: us-east-1,
    # errors and warnings.
    runner = Runner(ConfigMixIn(regions=["us-east-1"]))

    for name in STRATEGIES:
        rendered = render(load_template(), Strategy(name))
        resources = rendered["Resources"]
        endpoint = resources["Endpoint"]
        assert endpoint["Properties"]["RetainAllVariantProperties"] is True
        config = endpoint["Properties"]["DeploymentConfig"]
        alarms = [a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]]
        assert alarms == [
            resources["Endpoint5xxAlarm"]["Properties"]["AlarmName"],
            resources["EndpointLatencyAlarm"]["Properties"]["AlarmName"],
        ]
        assert ("RollingUpdatePolicy" in config) == (name == "rolling")
        assert {"Endpoint5xxAlarm", "EndpointLatencyAlarm", "RollbackAlarmsPolicy"} <= set(endpoint["DependsOn"])
        matches = [m for m in runner.validate_template(json.loads(json.dumps(rendered))) if m.rule.id[0] in "EW"]
        assert [str(m) for m in matches] == [], name
    five_xx = resources["Endpoint5xxAlarm"]["Properties"]
    assert (five_xx["MetricName"], five_xx["Statistic"], five_xx["Threshold"]) == (
        "Invocation5XXErrors",
        "Average",
        {"Ref": "Max5xxRate"},
    )
    assert {"Name": "VariantName", "Value": "AllTraffic"} in five_xx["Dimensions"]
    latency = resources["EndpointLatencyAlarm"]["Properties"]
    assert (latency["MetricName"], latency["Threshold"]) == ("ModelLatency", {"Ref": "MaxModelLatencyMicroseconds"})
    (statement,) = resources["RollbackAlarmsPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "cloudwatch:DescribeAlarms"
    assert [r["Fn::Sub"].split(":alarm:")[1] for r in statement["Resource"]] == [
        "${AWS::StackName}-endpoint-5xx-rate",
        "${AWS::StackName}-endpoint-model-latency",
    ]
    # A bad value in a rendered template is caught by cfn-lint too (the enum it knows).
    broken = render(load_template(), Strategy("canary"))
    broken["Resources"]["Endpoint"]["Properties"]["DeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]["Type"] = "GRADUAL"
    assert any("GRADUAL" in str(m) and m.rule.id.startswith("E") for m in runner.validate_template(broken))


def test_the_verifier_judges_by_the_config_the_endpoint_serves() -> None:
    before = Served("ep", "config-old", "pkg/1")
    assert judge(before, Served("ep", "config-new", "pkg/2"), "pkg/2") == "promoted"
    # InService is not success: a rolled-back update ends InService on the old config.
    assert judge(before, Served("ep", "config-old", "pkg/1", status="InService"), "pkg/2") == "rolled-back"
    assert judge(before, Served("ep", "config-new", "pkg/2", status="Failed"), "pkg/2") == "failed"
    assert judge(before, Served("ep", "config-other", "pkg/3"), "pkg/2") == "failed"
    # The same package again (nothing to shift) is what was asked for.
    assert judge(before, Served("ep", "config-old", "pkg/1"), "pkg/1") == "promoted"


def test_the_cli_renders_the_chosen_strategy_and_refuses_out_of_range_options(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kubesage.cli import main

    args = ["deploy", "--model-package", "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1", "--model",
            "models:/m/1", "--execution-role", "arn:aws:iam::123456789012:role/r", "--bucket", "b"]  # fmt: skip
    out = tmp_path / "t.json"
    done = CliRunner().invoke(
        main, [*args, "--strategy", "linear", "--linear-percent", "25", "--template-only", str(out)]
    )
    assert done.exit_code == 0, done.output
    routing = json.loads(out.read_text())["Resources"]["Endpoint"]["Properties"]["DeploymentConfig"]
    assert routing["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["LinearStepSize"]["Value"] == 25
    refused = CliRunner().invoke(main, [*args, "--rolling-percent", "60", "--strategy", "rolling"])
    assert refused.exit_code == 2
    assert (
        refused.stderr.strip()
        == "error: --rolling-percent 60 is out of range: rolling batches are 5-50% of the capacity"
    )
    local = CliRunner().invoke(
        main, ["api", "--endpoint-url", "http://127.0.0.1:9", "--canary-endpoint-url", "http://127.0.0.1:10",
               "--canary-percent", "70", "--model", str(tmp_path)],
    )  # fmt: skip
    assert local.exit_code == 2
    assert local.stderr.strip() == "error: --canary-percent 70 is out of range: a canary is 1-50% of the traffic"
