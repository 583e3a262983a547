"""The call to the model endpoint: one boto3 sagemaker-runtime client per container, bounded in time.

Rows go as `text/csv` (SageMaker XGBoost's format; floats written with repr, which round-trips
exactly) and the answer is the model server's `{"predictions": [{"score": p}, ...]}`. botocore's
errors, read through kubesage.util.aws, become EndpointError (502) or EndpointTimeoutError (504); their
detail (endpoint name, AWS message) is for the function's log, the client gets a generic message
(kubesage.lambda_runtime.errors).

Retries: only a failed connection is retried, since then the endpoint never saw the request. A read
timeout or an error answer is not: the server may still be working on it, and retrying an
overloaded endpoint multiplies its load. The settings are refused unless every attempt's connect
timeout plus backoff plus one read timeout fit in DEADLINE_SECONDS, under API Gateway's 29 s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from kubesage.lambda_runtime.errors import EndpointError, EndpointTimeoutError
from kubesage.util.aws import AwsFailure, on_aws_failure

ENV_ENDPOINT_NAME = "ENDPOINT_NAME"
ENV_ENDPOINT_URL = "KUBESAGE_SAGEMAKER_RUNTIME_URL"
ENV_READ_TIMEOUT = "KUBESAGE_ENDPOINT_READ_TIMEOUT"
ENV_MAX_ATTEMPTS = "KUBESAGE_ENDPOINT_MAX_ATTEMPTS"
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 8.0
MAX_ATTEMPTS = 3  # connection attempts; a request that reached the endpoint is sent once
BACKOFF_SECONDS = 0.1  # doubled before each further connection attempt
# One budget for the whole call: API Gateway gives up at 29 s and the function's timeout is 30 s, so
# the worst case (every connection attempt timing out, then one full read) must end before either.
DEADLINE_SECONDS = 25.0


def worst_case_seconds(read_timeout: float, max_attempts: int) -> float:
    """The longest a call can take: each attempt's connect timeout and backoff, then one read."""
    backoff = sum(BACKOFF_SECONDS * 2**i for i in range(max_attempts - 1))
    return max_attempts * CONNECT_TIMEOUT_SECONDS + backoff + read_timeout


@dataclass(frozen=True)
class EndpointSettings:
    name: str
    url: str | None = None  # None: the regional SageMaker runtime
    region: str | None = None
    read_timeout: float = READ_TIMEOUT_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    unsigned: bool = False  # a local stand-in (kubesage serve) that checks no signature

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.read_timeout <= 0:
            raise EndpointError(f"{ENV_MAX_ATTEMPTS} must be 1 or more and {ENV_READ_TIMEOUT} above 0")
        worst = worst_case_seconds(self.read_timeout, self.max_attempts)
        if worst > DEADLINE_SECONDS:
            raise EndpointError(
                f"{ENV_MAX_ATTEMPTS}={self.max_attempts} and {ENV_READ_TIMEOUT}={self.read_timeout:g} can take "
                f"{worst:.1f} s, over the {DEADLINE_SECONDS:g} s deadline under API Gateway's 29 s; lower them"
            )

    @classmethod
    def from_environment(cls) -> EndpointSettings:
        name = os.environ.get(ENV_ENDPOINT_NAME, "").strip()
        if not name:
            raise EndpointError(f"{ENV_ENDPOINT_NAME} is not set in the function's environment; redeploy the stack")
        return cls(
            name=name,
            url=os.environ.get(ENV_ENDPOINT_URL) or None,
            read_timeout=float(os.environ.get(ENV_READ_TIMEOUT) or READ_TIMEOUT_SECONDS),
            max_attempts=int(os.environ.get(ENV_MAX_ATTEMPTS) or MAX_ATTEMPTS),
        )


class Endpoint:
    """A named SageMaker endpoint behind one client, created once and reused for every request."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        extra: dict[str, Any] = {}
        if settings.unsigned:
            from botocore import UNSIGNED

            extra["signature_version"] = UNSIGNED
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.read_timeout,
            # botocore's own retries would also resend after read timeouts and 5xx: this class
            # retries connection failures itself (predict), so botocore sends each request once.
            retries={"mode": "standard", "total_max_attempts": 1},
            **extra,
        )
        self.client = boto3.client(
            "sagemaker-runtime", endpoint_url=settings.url, region_name=settings.region, config=config
        )

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """P(churn) per feature row, in order."""
        body = csv_body(rows)
        deadline = time.monotonic() + DEADLINE_SECONDS
        for attempt in range(self.settings.max_attempts):
            try:
                return self._invoke(body, len(rows))
            except _NotConnectedError as exc:
                wait = BACKOFF_SECONDS * 2**attempt
                last = attempt + 1 == self.settings.max_attempts
                if last or time.monotonic() + wait + worst_case_seconds(self.settings.read_timeout, 1) > deadline:
                    raise exc.error from exc.__cause__
                time.sleep(wait)
        raise AssertionError("unreachable: max_attempts is at least 1")

    def _invoke(self, body: bytes, expected: int) -> list[float]:
        name = self.settings.name
        with on_aws_failure(lambda failure: _endpoint_error(name, failure)):
            response = self.client.invoke_endpoint(
                EndpointName=name, ContentType="text/csv", Accept="application/json", Body=body
            )
            payload = response["Body"].read()
        return _scores(payload, expected, name)


class _NotConnectedError(Exception):
    """No connection was made, so the endpoint never saw the request: safe to send it again."""

    def __init__(self, error: EndpointError) -> None:
        super().__init__(str(error))
        self.error = error


def _endpoint_error(name: str, failure: AwsFailure) -> Exception:
    """The error a failed call raises: _NotConnectedError (to be retried) when the request never left."""
    if failure.kind == "connect_timeout":
        return _NotConnectedError(
            EndpointTimeoutError(f"could not connect to the model endpoint '{name}' in time ({failure.text})")
        )
    if failure.kind == "unreachable":
        return _NotConnectedError(EndpointError(f"could not reach the model endpoint '{name}' ({failure.text})"))
    if failure.kind == "read_timeout":
        return EndpointTimeoutError(f"the model endpoint '{name}' did not answer in time ({failure.text})")
    if failure.answered:
        return EndpointError(f"the model endpoint '{name}' answered {failure.code or 'an error'}: {failure.message}")
    return EndpointError(f"calling the model endpoint '{name}' failed: {failure.text}")


def csv_body(rows: Sequence[Sequence[float]]) -> bytes:
    """Feature rows as the endpoint's text/csv: repr round-trips every float64 exactly."""
    return "\n".join(",".join(map(repr, row)) for row in rows).encode()


def _scores(payload: bytes, expected: int, name: str) -> list[float]:
    try:
        predictions = json.loads(payload)["predictions"]
        scores = [float(p["score"]) for p in predictions]
    except (ValueError, KeyError, TypeError) as exc:
        raise EndpointError(f"the model endpoint '{name}' answered an unreadable body ({exc!r})") from exc
    if len(scores) != expected:
        raise EndpointError(f"the model endpoint '{name}' answered {len(scores)} predictions for {expected} records")
    if not all(0.0 <= s <= 1.0 for s in scores):
        raise EndpointError(f"the model endpoint '{name}' answered scores outside [0, 1]; is it the churn model?")
    return scores
