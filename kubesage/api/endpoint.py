"""The call to the model endpoint: one boto3 sagemaker-runtime client per container, bounded in time.

Rows go as `text/csv` (SageMaker XGBoost's format; floats written with repr, which round-trips
exactly) and the answer is the model server's `{"predictions": [{"score": p}, ...]}`. botocore's
errors become EndpointError (502) or EndpointTimeoutError (504) naming the endpoint and what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from kubesage.api.errors import EndpointError, EndpointTimeoutError

ENV_ENDPOINT_NAME = "ENDPOINT_NAME"
ENV_ENDPOINT_URL = "KUBESAGE_SAGEMAKER_RUNTIME_URL"
ENV_READ_TIMEOUT = "KUBESAGE_ENDPOINT_READ_TIMEOUT"
ENV_MAX_ATTEMPTS = "KUBESAGE_ENDPOINT_MAX_ATTEMPTS"
CONNECT_TIMEOUT_SECONDS = 2.0
# Three attempts of at most 8 s each stay inside API Gateway's 29 s integration timeout.
READ_TIMEOUT_SECONDS = 8.0
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class EndpointSettings:
    name: str
    url: str | None = None  # None: the regional SageMaker runtime
    region: str | None = None
    read_timeout: float = READ_TIMEOUT_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    unsigned: bool = False  # a local stand-in (kubesage serve) that checks no signature

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
            retries={"mode": "standard", "max_attempts": settings.max_attempts},
            **extra,
        )
        self.client = boto3.client(
            "sagemaker-runtime", endpoint_url=settings.url, region_name=settings.region, config=config
        )

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """P(churn) per feature row, in order."""
        body = csv_body(rows)
        name = self.settings.name
        try:
            response = self.client.invoke_endpoint(
                EndpointName=name, ContentType="text/csv", Accept="application/json", Body=body
            )
            payload = response["Body"].read()
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise EndpointTimeoutError(
                f"the model endpoint '{name}' did not answer in time ({type(exc).__name__}); retry shortly"
            ) from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise EndpointError(
                f"the model endpoint '{name}' answered {error.get('Code', 'an error')}: "
                f"{str(error.get('Message', ''))[:300]}"
            ) from exc
        except EndpointConnectionError as exc:
            raise EndpointError(f"could not reach the model endpoint '{name}' ({exc}); retry shortly") from exc
        except BotoCoreError as exc:
            raise EndpointError(f"calling the model endpoint '{name}' failed: {exc}") from exc
        return _scores(payload, len(rows), name)


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
