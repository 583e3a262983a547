"""Following an endpoint update to its end and judging it by what the endpoint serves.

A SageMaker update under deployment guardrails passes through `Updating` (the new fleet starts,
traffic shifts, the alarms are watched) and, when an alarm fires, `RollingBack`; it ends `InService`
either way. A rolled-back update ends InService on the OLD endpoint config, and CloudFormation then
rolls the stack back too, so neither the endpoint's status nor a waiter says whether the new version
went live: `DescribeEndpoint.EndpointConfigName` does. `follow` polls the stack and the endpoint
until both are done; `judge` compares the config served with the one served before and, for a new
config, its model with the package requested; `fired_alarms` says which alarm rolled it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from kubesage.errors import DeployError
from kubesage.util.aws import AwsFailure, call_error, on_aws_failure

# Endpoint states that are not the end of an update (RollingBack is not done: it ends InService).
MOVING = ("Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed")
DONE = ("InService", "Failed", "OutOfService")
Verdict = Literal["promoted", "rolled-back", "failed"]


class SageMakerReader(Protocol):
    """What the verifier reads from SageMaker (a boto3 client has these)."""

    def describe_endpoint(self, **kwargs: Any) -> dict[str, Any]: ...

    def describe_endpoint_config(self, **kwargs: Any) -> dict[str, Any]: ...

    def describe_model(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Served:
    """What the endpoint serves: its config and the model package inside it ("" when unknown)."""

    endpoint_name: str
    endpoint_config: str
    model_package: str
    status: str = "InService"
    failure_reason: str = ""


@dataclass(frozen=True)
class FiredAlarm:
    name: str
    reason: str


@dataclass(frozen=True)
class Followed:
    """How an update ended: the stack's status, what the endpoint serves, the states it went through."""

    stack_status: str
    served: Served
    states: list[str] = field(default_factory=list)


def served_package(sagemaker: SageMakerReader, config_name: str) -> str:
    """The model package the config's (one) variant serves; "" if the config or model is gone."""
    package = ""

    def gone(failure: AwsFailure) -> Exception | None:
        if failure.answered and not failure.access_denied:
            return None  # a config CloudFormation already deleted: the caller compares names instead
        return call_error(f"sagemaker:DescribeEndpointConfig {config_name}", failure, DeployError)

    with on_aws_failure(gone):
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        package = str(model.get("PrimaryContainer", {}).get("ModelPackageName") or "")
    return package


def read_served(sagemaker: SageMakerReader, endpoint_name: str, with_package: bool = True) -> Served:
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    config = str(endpoint.get("EndpointConfigName") or "")
    return Served(
        endpoint_name=endpoint_name,
        endpoint_config=config,
        model_package=served_package(sagemaker, config) if with_package and config else "",
        status=str(endpoint.get("EndpointStatus") or ""),
        failure_reason=str(endpoint.get("FailureReason") or ""),
    )


def follow(
    stack_status: Callable[[], str],
    sagemaker: SageMakerReader,
    endpoint_name: str,
    sleep: Callable[[float], None],
    delay: float = 5.0,
    max_polls: int = 720,
    progress: Callable[[str], None] = lambda _: None,
) -> Followed:
    """Poll until the stack is no longer *_IN_PROGRESS and the endpoint is in a final state."""
    states: list[str] = []
    for _ in range(max_polls):
        status = stack_status()
        endpoint = read_served(sagemaker, endpoint_name, with_package=False)
        if not states or states[-1] != endpoint.status:
            states.append(endpoint.status)
            progress(f"endpoint {endpoint_name}: {endpoint.status} (stack {status})")
        if not status.endswith("_IN_PROGRESS") and endpoint.status in DONE:
            served = read_served(sagemaker, endpoint_name)
            return Followed(status, served, states)
        sleep(delay)
    raise DeployError(
        f"the update of {endpoint_name} did not finish in {max_polls * delay:.0f} s; it may still be running: "
        f"check `aws sagemaker describe-endpoint --endpoint-name {endpoint_name}`, then deploy again"
    )


def judge(before: Served, after: Served, requested_package: str) -> Verdict:
    """promoted: the endpoint serves the requested package; rolled-back: it serves the config it served
    before; failed: anything else (a failed endpoint, an unknown config)."""
    if after.status == "InService" and after.model_package == requested_package:
        return "promoted"
    if after.status == "InService" and after.endpoint_config == before.endpoint_config:
        return "rolled-back"
    return "failed"


def fired_alarms(cloudwatch: Any, names: list[str], since: datetime | None = None) -> list[FiredAlarm]:
    """The rollback alarms in ALARM now, else those that went to ALARM since `since` (alarm history)."""
    fired: list[FiredAlarm] = []

    def unreadable(failure: AwsFailure) -> None:
        # The rollback is reported anyway; say why the alarm is not named rather than fail here.
        fired.append(FiredAlarm("(unknown)", f"cloudwatch:DescribeAlarms failed: {failure.text}"))

    with on_aws_failure(unreadable):
        for alarm in cloudwatch.describe_alarms(AlarmNames=names).get("MetricAlarms", []):
            if alarm.get("StateValue") == "ALARM":
                fired.append(FiredAlarm(alarm["AlarmName"], str(alarm.get("StateReason") or "")))
    if fired or since is None:
        return fired
    # The alarm may be OK again by the time the rollback ends; its history still says it fired.
    # (moto has no DescribeAlarmHistory; a failure here leaves the list empty.)
    with on_aws_failure(lambda failure: None):
        for name in names:
            history = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate", StartDate=since)
            for item in history.get("AlarmHistoryItems", []):
                if "to ALARM" in str(item.get("HistorySummary", "")):
                    fired.append(FiredAlarm(name, str(item["HistorySummary"])))
                    break
    return fired
