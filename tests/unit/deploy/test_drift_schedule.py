"""The drift schedule in the template (EventBridge -> the monitor_churn SageMaker pipeline) agrees with the
pipeline it starts, and `kubesage deploy --monitoring-pipeline` sets it; without it nothing is scheduled."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from kubesage.deploy.package import LambdaZip
from kubesage.deploy.stack import DeployRequest, parameters
from kubesage.deploy.template import load_template


def test_the_rule_passes_exactly_the_pipelines_parameters(tmp_path: Path) -> None:
    import yaml

    from kubesage.pipelines.monitor_churn import monitor_churn

    compiler.Compiler().compile(monitor_churn, str(tmp_path / "monitor.yaml"))
    inputs = yaml.safe_load((tmp_path / "monitor.yaml").read_text())["root"]["inputDefinitions"]["parameters"]
    required = {name for name, spec in inputs.items() if not spec.get("isOptional")}
    template = load_template()
    rule = template["Resources"]["DriftSchedule"]
    assert rule["Condition"] == "ScheduleMonitoring" and template["Resources"]["MonitoringScheduleRole"]["Condition"]
    passed = {
        p["Name"] for p in rule["Properties"]["Targets"][0]["SageMakerPipelineParameters"]["PipelineParameterList"]
    }
    assert required <= passed <= set(inputs), (required, passed, set(inputs))
    assert template["Parameters"]["MonitoringWindow"]["Default"] == "1h"
    assert template["Parameters"]["MonitoringSchedule"]["Default"] == "rate(1 hour)"


def test_deploy_sets_the_schedule_only_when_asked() -> None:
    built = LambdaZip(Path("api.zip"), "0" * 64)
    request = DeployRequest("s", "arn:aws:sagemaker:us-east-1:111122223333:model-package/p/1", "models:/c/3", "r", "b")
    plain = {p["ParameterKey"]: p["ParameterValue"] for p in parameters(request, built, "f" * 64)}
    assert "MonitoringPipelineName" not in plain  # the template's default "": no rule, no role
    scheduled = DeployRequest(**{**request.__dict__, "monitoring_pipeline": "monitor-churn"})
    values = {p["ParameterKey"]: p["ParameterValue"] for p in parameters(scheduled, built, "f" * 64)}
    assert (values["MonitoringPipelineName"], values["MonitoringModelUri"]) == ("monitor-churn", "models:/c/3")


def test_the_schedules_role_may_only_start_that_pipeline() -> None:
    role = load_template()["Resources"]["MonitoringScheduleRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert statement["Resource"]["Fn::Sub"].endswith(":pipeline/${MonitoringPipelineName}")
