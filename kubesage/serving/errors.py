"""HTTP-facing errors of the model server: each carries its status code and a stable error code.

The error body is `{"code": ..., "message": ..., "status": ...}`. botocore's rest-json parser reads
`code` and `message`, so a boto3 `sagemaker-runtime` client pointed at this server raises a
ClientError that names the problem.
"""

from __future__ import annotations

from kubesage.errors import KubesageError


class RequestError(KubesageError):
    """The request cannot be served as sent; the client must change it."""

    status = 400
    code = "InvalidInput"


class UnsupportedMediaTypeError(RequestError):
    status = 415
    code = "UnsupportedMediaType"


class NotAcceptableError(RequestError):
    status = 406
    code = "NotAcceptable"


class PayloadTooLargeError(RequestError):
    status = 413
    code = "PayloadTooLarge"


class ServerBusyError(RequestError):
    """Too many requests are already waiting for this worker: retry after a short pause."""

    status = 429
    code = "TooManyRequests"
