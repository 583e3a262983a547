"""Errors of the real-time API. Each carries the HTTP status the handler answers with.

Client mistakes are 4xx and name every bad field; the endpoint's failures are 502 (it answered with
an error or could not be reached) or 504 (it did not answer in time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubesage.errors import KubesageError


@dataclass(frozen=True)
class FieldProblem:
    """One bad field of one record: what the 400 body lists."""

    record: int
    field: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"record": self.record, "field": self.field, "message": self.message}


class ApiError(KubesageError):
    """A request the API answers with an error status instead of predictions."""

    status = 500


class InvalidRequestError(ApiError):
    """The client's request is malformed or holds bad records; `problems` names each bad field."""

    status = 400
    exit_code = 2

    def __init__(self, message: str, problems: Sequence[FieldProblem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class MethodNotAllowedError(InvalidRequestError):
    status = 405


class PayloadTooLargeError(InvalidRequestError):
    status = 413


class EndpointError(ApiError):
    """The model endpoint answered with an error, an unusable body, or could not be reached."""

    status = 502


class EndpointTimeoutError(EndpointError):
    """The model endpoint did not answer within the client's timeouts and retries."""

    status = 504


class DeployError(KubesageError):
    """A deployment could not be prepared, refused, or failed in CloudFormation."""
