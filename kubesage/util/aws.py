"""The one place botocore's errors become kubesage errors.

Every AWS call kubesage makes runs inside `aws_call("service:Action on what")`: a refusal becomes a
CloudError (AccessDeniedError for permission problems, naming the action to allow) whose message
names the call, so callers and the CLI never show a botocore traceback, and nothing swallows
AccessDenied by accident: code that expects "not found" asks `is_not_found` explicitly.

A caller whose message depends on the failure (a missing input is the user's DataError, a stack
that does not exist yet is no error at all) runs the call inside `on_aws_failure(handle)`: `handle`
reads the failure as an `AwsFailure` (AWS's code and message, or botocore's text when no answer
came) and returns the kubesage error to raise, or None when the failure is expected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from kubesage.errors import AccessDeniedError, CloudError, KubesageError

ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation", "InvalidClientTokenId"}
)
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket", "ResourceNotFound"})


def error_code(exc: BaseException) -> str:
    """botocore's error code of a ClientError ('' for anything else)."""
    response: Any = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


# How a call failed: AWS answered with an error (ClientError), or no answer came: no connection
# (unreachable), no connection in time, no answer in time after sending, or anything else botocore raised.
FailureKind = Literal["answered", "unreachable", "connect_timeout", "read_timeout", "other"]


@dataclass(frozen=True)
class AwsFailure:
    """A failed AWS call as kubesage reads it."""

    kind: FailureKind
    code: str  # AWS's error code, '' when it did not answer
    message: str  # AWS's message when it answered, botocore's text otherwise
    text: str  # botocore's whole description of the failure

    @property
    def answered(self) -> bool:
        return self.kind == "answered"

    @property
    def never_sent(self) -> bool:
        """No connection was made, so AWS never saw the request: sending it again is safe."""
        return self.kind in ("unreachable", "connect_timeout")

    @property
    def access_denied(self) -> bool:
        return self.code in ACCESS_DENIED_CODES

    @property
    def not_found(self) -> bool:
        return self.code in NOT_FOUND_CODES


def failure_of(exc: BaseException) -> AwsFailure:
    """An AwsFailure from a botocore exception (ClientError or BotoCoreError)."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        return AwsFailure("answered", error_code(exc), str(response.get("Error", {}).get("Message", exc)), str(exc))
    kind: FailureKind = "other"
    if isinstance(exc, ConnectTimeoutError):  # not an EndpointConnectionError: a sibling under ConnectionError
        kind = "connect_timeout"
    elif isinstance(exc, EndpointConnectionError):
        kind = "unreachable"
    elif isinstance(exc, ReadTimeoutError):
        kind = "read_timeout"
    return AwsFailure(kind, "", str(exc), str(exc))


@contextmanager
def on_aws_failure(handle: Callable[[AwsFailure], Exception | None]) -> Iterator[None]:
    """Run the AWS calls inside; on a botocore failure raise `handle(failure)` from it, or leave the block
    quietly when `handle` returns None (the failure was expected)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        error = handle(failure_of(exc))
        if error is not None:
            raise error from exc


def call_error(operation: str, failure: AwsFailure, error: type[KubesageError] = CloudError) -> KubesageError:
    """kubesage's error for a failed `operation`: AccessDeniedError naming the action to allow, else `error`."""
    if failure.access_denied:
        action = operation.split(" ", 1)[0]
        return AccessDeniedError(
            f"AWS denied {operation}: {failure.message}. Allow {action} for these credentials or role"
        )
    if failure.answered:
        return error(f"AWS refused {operation}: {failure.code or 'error'}: {failure.message}")
    return error(f"AWS call {operation} failed: {failure.text}; check credentials, region and network")


def aws_call(operation: str, error: type[KubesageError] = CloudError) -> AbstractContextManager[None]:
    """Map botocore failures of the call inside to `error` (or AccessDeniedError), naming `operation`."""
    return on_aws_failure(lambda failure: call_error(operation, failure, error))
