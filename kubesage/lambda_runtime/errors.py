"""The Lambda API's own errors, on kubesage.http_errors' tree.

Client mistakes are 4xx and name every bad field (InvalidRequestError, and the shared
MethodNotAllowedError and PayloadTooLargeError); the endpoint's failures are 502 (it answered with an
error or could not be reached) or 504 (it did not answer in time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubesage.http_errors import RequestError, ServerSideError


@dataclass(frozen=True)
class FieldProblem:
    """One bad field of one record: what the 400 body lists."""

    record: int
    field: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"record": self.record, "field": self.field, "message": self.message}


class InvalidRequestError(RequestError):
    """The client's request is malformed or holds bad records; `problems` names each bad field."""

    exit_code = 2

    def __init__(self, message: str, problems: Sequence[FieldProblem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class EndpointError(ServerSideError):
    """The model endpoint answered with an error, an unusable body, or could not be reached.

    The message names the endpoint and quotes AWS (account id, role and function ARNs, log links):
    it goes to the function's log only; the client gets `public_message` and the request id.
    """

    status = 502
    code = "EndpointError"

    @property
    def public_message(self) -> str:
        return "the model endpoint could not answer; retry later, or report the requestId"


class EndpointTimeoutError(EndpointError):
    """The model endpoint did not answer within the client's timeouts and retries."""

    status = 504
    code = "EndpointTimeout"

    @property
    def public_message(self) -> str:
        return "the model endpoint did not answer in time; retry shortly, or report the requestId"
