"""How a new model version reaches the endpoint: SageMaker deployment guardrails, as plain data.

`kubesage deploy --strategy all-at-once|canary|linear|rolling` picks one; the sizes, the bake time and
the alarm thresholds are options. `check` refuses, before anything is sent to AWS, every value
outside the ranges SageMaker accepts, in one line naming the option and the rule; `deployment_config`
renders the endpoint's `DeploymentConfig` (blue/green traffic routing or a rolling update) with
`AutoRollbackConfiguration` on the template's two alarms.

The ranges are AWS's (SageMaker API reference: TrafficRoutingConfig, BlueGreenUpdatePolicy,
RollingUpdatePolicy; cfn-lint's schema has the numeric ones): wait intervals 0-3600 s, canary at
most 50% of the variant's capacity, linear steps 10-50%, rolling batches 5-50%, the whole update
600-28800 s and longer than its waits, termination wait 0-3600 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from kubesage.errors import ParameterError

StrategyName = Literal["all-at-once", "canary", "linear", "rolling"]
STRATEGIES: tuple[StrategyName, ...] = ("all-at-once", "canary", "linear", "rolling")
# The template's two alarms (lambda/template.yaml), by logical id; SageMaker watches them during an update.
ALARM_IDS = ("Endpoint5xxAlarm", "EndpointLatencyAlarm")

WAIT_RANGE = (0, 3600)
TIMEOUT_RANGE = (600, 28800)
TERMINATION_RANGE = (0, 3600)
CANARY_RANGE = (1, 50)
LINEAR_RANGE = (10, 50)
ROLLING_RANGE = (5, 50)


@dataclass(frozen=True)
class Strategy:
    """A rollout: its kind, sizes in percent of the variant's capacity, waits in seconds."""

    name: StrategyName = "canary"
    canary_percent: int = 10
    linear_percent: int = 20
    rolling_percent: int = 25
    bake_seconds: int = 600  # between shifts, and after the last one, with the alarms watched
    timeout_seconds: int | None = None  # None: the waits plus TIMEOUT_MARGIN, at least 600
    termination_wait_seconds: int = 0  # the old fleet kept after the shift (fast manual rollback)


@dataclass(frozen=True)
class Thresholds:
    """The two alarms: the variant's 5xx rate (Invocation5XXErrors' average) and ModelLatency's average."""

    max_5xx_rate: float = 0.05
    max_latency_ms: float = 1000.0


TIMEOUT_MARGIN = 600  # time for the new fleet to start, on top of the waits


def _within(option: str, value: float, bounds: tuple[float, float], rule: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ParameterError(f"{option} {value:g} is out of range: {rule}")


def shifts(strategy: Strategy) -> int:
    """How many traffic shifts (each followed by a bake) the update makes."""
    if strategy.name == "canary":
        return 2
    if strategy.name == "linear":
        return math.ceil(100 / strategy.linear_percent)
    if strategy.name == "rolling":
        return math.ceil(100 / strategy.rolling_percent)
    return 1


def total_wait(strategy: Strategy) -> int:
    return shifts(strategy) * strategy.bake_seconds + strategy.termination_wait_seconds


def timeout(strategy: Strategy) -> int:
    if strategy.timeout_seconds is not None:
        return strategy.timeout_seconds
    return max(TIMEOUT_RANGE[0], min(TIMEOUT_RANGE[1], total_wait(strategy) + TIMEOUT_MARGIN))


def check(strategy: Strategy, thresholds: Thresholds = Thresholds()) -> None:
    """ParameterError, in one line with AWS's rule, for the first option SageMaker would refuse."""
    if strategy.name not in STRATEGIES:
        raise ParameterError(f"--strategy {strategy.name!r} is not one of {', '.join(STRATEGIES)}")
    _within("--bake-seconds", strategy.bake_seconds, WAIT_RANGE, "SageMaker waits 0-3600 s between traffic shifts")
    _within(
        "--termination-wait-seconds",
        strategy.termination_wait_seconds,
        TERMINATION_RANGE,
        "SageMaker keeps the old fleet 0-3600 s after the shift",
    )
    if strategy.name == "canary":
        _within("--canary-percent", strategy.canary_percent, CANARY_RANGE, "a canary is 1-50% of the capacity")
    elif strategy.name == "linear":
        _within("--linear-percent", strategy.linear_percent, LINEAR_RANGE, "linear steps are 10-50% of the capacity")
    elif strategy.name == "rolling":
        _within(
            "--rolling-percent", strategy.rolling_percent, ROLLING_RANGE, "rolling batches are 5-50% of the capacity"
        )
    if strategy.timeout_seconds is not None:
        _within("--timeout-seconds", strategy.timeout_seconds, TIMEOUT_RANGE, "an update may take 600-28800 s")
    waits = total_wait(strategy)
    if timeout(strategy) <= waits:
        raise ParameterError(
            f"--timeout-seconds {timeout(strategy)} is out of range: it must exceed the update's waits "
            f"({shifts(strategy)} shifts x --bake-seconds {strategy.bake_seconds} + termination wait = {waits} s)"
        )
    _within("--max-5xx-rate", thresholds.max_5xx_rate, (0.0, 1.0), "a rate is a fraction of requests, 0-1")
    if thresholds.max_latency_ms <= 0:
        raise ParameterError(f"--max-latency-ms {thresholds.max_latency_ms:g} is out of range: it must be above 0")


def _percent(value: int) -> dict[str, Any]:
    return {"Type": "CAPACITY_PERCENT", "Value": value}


def deployment_config(strategy: Strategy, alarms: list[Any]) -> dict[str, Any]:
    """The endpoint's DeploymentConfig: the strategy's policy and auto-rollback on `alarms`.

    `alarms` are AlarmName values (strings or CloudFormation Refs to the template's alarms).
    """
    check(strategy)
    rollback = {"Alarms": [{"AlarmName": alarm} for alarm in alarms]}
    if strategy.name == "rolling":
        return {
            "RollingUpdatePolicy": {
                "MaximumBatchSize": _percent(strategy.rolling_percent),
                "WaitIntervalInSeconds": strategy.bake_seconds,
                "MaximumExecutionTimeoutInSeconds": timeout(strategy),
            },
            "AutoRollbackConfiguration": rollback,
        }
    routing: dict[str, Any] = {
        "Type": strategy.name.upper().replace("-", "_"),
        "WaitIntervalInSeconds": strategy.bake_seconds,
    }
    if strategy.name == "canary":
        routing["CanarySize"] = _percent(strategy.canary_percent)
    elif strategy.name == "linear":
        routing["LinearStepSize"] = _percent(strategy.linear_percent)
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": strategy.termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": timeout(strategy),
        },
        "AutoRollbackConfiguration": rollback,
    }


def alarm_parameters(thresholds: Thresholds) -> dict[str, str]:
    """The template's alarm parameters; ModelLatency is in microseconds."""
    return {
        "Max5xxRate": f"{thresholds.max_5xx_rate:g}",
        "MaxModelLatencyMicroseconds": str(round(thresholds.max_latency_ms * 1000)),
    }


def describe(strategy: Strategy) -> str:
    """One line for the progress output."""
    if strategy.name == "canary":
        how = f"canary {strategy.canary_percent}%, then the rest"
    elif strategy.name == "linear":
        how = f"linear steps of {strategy.linear_percent}%"
    elif strategy.name == "rolling":
        how = f"rolling batches of {strategy.rolling_percent}%"
    else:
        how = "all at once"
    return f"{how}, {strategy.bake_seconds} s bake after each shift, rollback on the 5xx and latency alarms"
