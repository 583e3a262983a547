"""The one place botocore's errors become kubesage errors.

Every AWS call kubesage makes runs inside `aws_call("service:Action on what")`: a refusal becomes a
CloudError (AccessDeniedError for permission problems, naming the action to allow) whose message
names the call, so callers and the CLI never show a botocore traceback, and nothing swallows
AccessDenied by accident: code that expects "not found" asks `is_not_found` explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def aws_call(operation: str, error: type[KubesageError] = CloudError) -> Iterator[None]:
    """Map botocore failures of the call inside to `error` (or AccessDeniedError), naming `operation`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in ACCESS_DENIED_CODES:
            action = operation.split(" ", 1)[0]
            raise AccessDeniedError(
                f"AWS denied {operation}: {message}. Allow {action} for these credentials or role"
            ) from exc
        raise error(f"AWS refused {operation}: {code or 'error'}: {message}") from exc
    except BotoCoreError as exc:
        raise error(f"AWS call {operation} failed: {exc}; check credentials, region and network") from exc
