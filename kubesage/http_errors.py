"""The one error tree for HTTP answers, shared by the model server (kubesage.serving) and the Lambda API.

Every error carries its HTTP status and a stable error code. Two branches say who must act:

- RequestError (4xx): the request cannot be served as sent; the client must change it.
- ServerSideError (5xx, and 429): the request may be fine, the server could not answer it now;
  the client retries later, unchanged.

How each layer writes the body differs (the server: `{"code", "message", "status"}`, which botocore's
rest-json parser reads; the Lambda: `{"message", "requestId"}`), so that stays with each layer.
Standard library only: the Lambda zip ships this module.
"""

from __future__ import annotations

from kubesage.errors import KubesageError


class HttpError(KubesageError):
    """An error answered over HTTP with `status` and the stable `code` clients may switch on."""

    status = 500
    code = "InternalError"

    @property
    def public_message(self) -> str:
        """What the client is told; a subclass whose message is for the log only overrides it."""
        return str(self)


class RequestError(HttpError):
    """The request cannot be served as sent; the client must change it."""

    status = 400
    code = "InvalidInput"


class NotFoundError(RequestError):
    status = 404
    code = "NotFound"


class MethodNotAllowedError(RequestError):
    status = 405
    code = "MethodNotAllowed"


class NotAcceptableError(RequestError):
    status = 406
    code = "NotAcceptable"


class RequestTimeoutError(RequestError):
    """The client sent its headers or body too slowly."""

    status = 408
    code = "RequestTimeout"


class PayloadTooLargeError(RequestError):
    status = 413
    code = "PayloadTooLarge"


class UnsupportedMediaTypeError(RequestError):
    status = 415
    code = "UnsupportedMediaType"


class HeadersTooLargeError(RequestError):
    status = 431
    code = "HeadersTooLarge"


class ServerSideError(HttpError):
    """The server could not answer now; the same request may succeed later."""

    status = 500
    code = "InternalError"


class ServerBusyError(ServerSideError):
    """Too many requests are already waiting: retry after a short pause (the client's request is fine)."""

    status = 429
    code = "TooManyRequests"


class ModelNotReadyError(ServerSideError):
    """The model is still loading (or failed to): retry when GET /ping answers 200."""

    status = 503
    code = "ModelNotReady"


class PredictionTimeoutError(ServerSideError):
    """The prediction did not finish within the server's deadline."""

    status = 503
    code = "PredictionTimeout"
