"""The one HTTP error tree: statuses, stable codes, and which branch says who must act."""

from __future__ import annotations

import json

import pytest

from kubesage import http_errors as e
from kubesage.errors import KubesageError
from kubesage.lambda_runtime.errors import EndpointError, EndpointTimeoutError, InvalidRequestError
from kubesage.serving.json_body import error_body

CLIENT = [
    (e.RequestError, 400, "InvalidInput"),
    (e.NotFoundError, 404, "NotFound"),
    (e.MethodNotAllowedError, 405, "MethodNotAllowed"),
    (e.NotAcceptableError, 406, "NotAcceptable"),
    (e.RequestTimeoutError, 408, "RequestTimeout"),
    (e.PayloadTooLargeError, 413, "PayloadTooLarge"),
    (e.UnsupportedMediaTypeError, 415, "UnsupportedMediaType"),
    (e.HeadersTooLargeError, 431, "HeadersTooLarge"),
    (InvalidRequestError, 400, "InvalidInput"),
]
SERVER = [
    (e.ServerSideError, 500, "InternalError"),
    (e.ServerBusyError, 429, "TooManyRequests"),
    (e.ModelNotReadyError, 503, "ModelNotReady"),
    (e.PredictionTimeoutError, 503, "PredictionTimeout"),
    (EndpointError, 502, "EndpointError"),
    (EndpointTimeoutError, 504, "EndpointTimeout"),
]


@pytest.mark.parametrize(("kind", "status", "code"), CLIENT, ids=[k.__name__ for k, _, _ in CLIENT])
def test_client_errors_say_change_the_request(kind: type[e.HttpError], status: int, code: str) -> None:
    assert (kind.status, kind.code) == (status, code)
    assert issubclass(kind, e.RequestError) and not issubclass(kind, e.ServerSideError)
    assert issubclass(kind, KubesageError)


@pytest.mark.parametrize(("kind", "status", "code"), SERVER, ids=[k.__name__ for k, _, _ in SERVER])
def test_server_side_errors_say_retry_later(kind: type[e.HttpError], status: int, code: str) -> None:
    """429 is the server's load, not the client's mistake: it sits with the 5xx, not under RequestError."""
    assert (kind.status, kind.code) == (status, code)
    assert issubclass(kind, e.ServerSideError) and not issubclass(kind, e.RequestError)


def test_the_server_body_names_code_message_and_status() -> None:
    body = json.loads(error_body(e.ServerBusyError("4 large requests are waiting; retry shortly")))
    assert body == {"code": "TooManyRequests", "message": "4 large requests are waiting; retry shortly", "status": 429}


def test_the_endpoints_detail_stays_in_the_log() -> None:
    error = EndpointError("the model endpoint 'churn' answered AccessDenied: arn:aws:iam::123456789012:role/x")
    assert "123456789012" not in error.public_message
    assert error.public_message == "the model endpoint could not answer; retry later, or report the requestId"
