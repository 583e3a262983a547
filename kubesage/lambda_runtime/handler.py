"""The Lambda function: an API Gateway REST proxy event (payload format 1.0) in, predictions out.

    POST /predict  body: one raw churn record, a list of them, or {"records": [...]}
    200 {"predictions": [{"churn_probability": p, "churn": true|false}, ...]}
    400 / 405 / 413 {"message": ..., "errors": [{"record", "field", "message"}], "requestId": ...}
    502 / 504 {"message": ..., "requestId": ...}   (the endpoint failed / timed out: a generic message;
                                                    the detail is logged under the request id)

`handler(event, context)` is the Lambda entry point (`kubesage.lambda_runtime.handler.handler`); the work is in
`PredictionApi.handle`, which tests and the local API front call directly. The container's state
(the model bundle and the boto3 client) is built once, on the first request, and reused.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesage.churn.schema import encode_record
from kubesage.http_errors import HttpError, MethodNotAllowedError, ServerSideError
from kubesage.lambda_runtime.bundle import ModelBundle, load_bundle
from kubesage.lambda_runtime.endpoint import Endpoint, EndpointSettings
from kubesage.lambda_runtime.errors import InvalidRequestError
from kubesage.lambda_runtime.records import read_body, validate_records

logger = logging.getLogger("kubesage.api")
logger.setLevel(logging.INFO)

JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class PredictionApi:
    """One container's API: the deployed model's bundle and its endpoint."""

    bundle: ModelBundle
    endpoint: Endpoint

    @classmethod
    def from_environment(cls) -> PredictionApi:
        return cls(bundle=load_bundle(), endpoint=Endpoint(EndpointSettings.from_environment()))

    def handle(self, event: Mapping[str, Any], fallback_request_id: str | None = None) -> dict[str, Any]:
        request_id = request_id_of(event) or fallback_request_id or str(uuid.uuid4())
        try:
            return respond(200, {"predictions": self.predict(event)}, request_id)
        except HttpError as exc:
            if isinstance(exc, ServerSideError):
                logger.warning("request %s: %s", request_id, exc)
            return error_response(exc, request_id)
        except Exception:  # never a traceback to the client; the log has it
            logger.exception("request %s failed", request_id)
            payload = {"message": "internal error; see the function's log", "requestId": request_id}
            return respond(500, payload, request_id)

    def predict(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        method = event.get("httpMethod")
        if method is not None and method != "POST":
            raise MethodNotAllowedError(f"{method} is not allowed; POST a raw churn record to /predict")
        records = read_body(event.get("body"), bool(event.get("isBase64Encoded")))
        validate_records(records)
        schema = self.bundle.schema
        scores = self.endpoint.predict([encode_record(r, schema) for r in records])
        threshold = self.bundle.decision_threshold
        return [{"churn_probability": p, "churn": p >= threshold} for p in scores]


def request_id_of(event: Mapping[str, Any]) -> str | None:
    context = event.get("requestContext")
    if isinstance(context, Mapping):
        value = context.get("requestId")
        if isinstance(value, str) and value:
            return value
    return None


def respond(status: int, payload: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, "X-Request-Id": request_id},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }


def error_response(exc: HttpError, request_id: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"message": exc.public_message, "requestId": request_id}
    if isinstance(exc, InvalidRequestError) and exc.problems:
        payload["errors"] = [p.to_dict() for p in exc.problems]
    return respond(exc.status, payload, request_id)


_api: PredictionApi | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point."""
    global _api
    if _api is None:
        _api = PredictionApi.from_environment()
    return _api.handle(event, getattr(context, "aws_request_id", None))
