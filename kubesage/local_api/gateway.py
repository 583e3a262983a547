"""A local stand-in for API Gateway (REST API, Lambda proxy integration) in front of the handler.

It does what API Gateway does for the one route the template declares, `POST /predict`:
- any other route or method -> 403 `{"message": "Missing Authentication Token"}`;
- a missing or wrong `x-api-key` -> 403 `{"message": "Forbidden"}`, before any of the body is read;
- a body over API Gateway's 10 MB limit -> 413;
- the request becomes the proxy event `sam local start-api` builds (payload format 1.0);
- the handler's answer becomes the HTTP response; a handler that raises or answers something that
  is not a proxy response -> 502 `{"message": "Internal server error"}`.

With two served versions (`kubesage api --canary-endpoint-url`), GET /_kubesage/traffic and POST
/_kubesage/traffic/rollback (API key required) show and roll back the local traffic split
(kubesage.local_api.split); they are kubesage's, not API Gateway's.

What it does not do (only real API Gateway can show them): usage-plan throttling and quotas, IAM
and resource policies, stage variables, caching. The handler runs in-process, or in the Lambda
image under the Runtime Interface Emulator (`LambdaInvoker` below).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import unquote_plus
from urllib.request import Request, urlopen

from kubesage.errors import ParameterError
from kubesage.local_api.asgi import answer_lifespan
from kubesage.local_api.split import ROLLBACK_PATH, TRAFFIC_PATH, TrafficSplit

logger = logging.getLogger(__name__)

ENV_API_KEY = "KUBESAGE_API_KEY"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Invoke = Callable[[dict[str, Any]], Mapping[str, Any]]

ROUTE = ("POST", "/predict")
SPLIT_ROUTES = (("GET", TRAFFIC_PATH), ("POST", ROLLBACK_PATH))  # kubesage's own, with a traffic split only
RESOURCE = "/predict"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway REST APIs refuse larger payloads
STAGE = "local"
ACCOUNT_ID = "123456789012"
API_ID = "local"
TEXT_TYPES = ("application/json", "text/", "application/xml")


def generate_api_key() -> str:
    """A random key with API Gateway's length (40 characters)."""
    return secrets.token_urlsafe(30)[:40]


def read_api_key(path: Path | None, environ: Mapping[str, str]) -> str | None:
    """The key from a file (first line) or KUBESAGE_API_KEY, else None (generate one).

    Never from the command line: arguments show in `ps` and shell history to every local user.
    """
    if path is not None:
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ParameterError(f"cannot read the API key file {path}: {exc.strerror}") from None
        if not key:
            raise ParameterError(f"the API key file {path} is empty; write the key on its first line")
        return key
    return environ.get(ENV_API_KEY, "").strip() or None


class LocalGateway:
    """ASGI app: API key check, proxy event, handler call, proxy response."""

    def __init__(self, invoke: Invoke, api_key: str, stage: str = STAGE, split: TrafficSplit | None = None) -> None:
        if not api_key:
            raise ValueError("an API key is required")
        self.invoke = invoke
        self.api_key = api_key
        self.stage = stage
        self.split = split  # the local traffic split's state and rollback routes, when fronting two versions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        route = (scope["method"], scope["path"])
        if route != ROUTE and (self.split is None or route not in SPLIT_ROUTES):
            await _send(send, 403, {"message": "Missing Authentication Token"})
            return
        # The key first: a client without it must not make the gateway read (and hold) 10 MB.
        given = next((v for k, v in headers if k.lower() == "x-api-key"), "")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            await _send(send, 403, {"message": "Forbidden"})
            return
        if self.split is not None and route in SPLIT_ROUTES:
            if route == SPLIT_ROUTES[1]:
                self.split.roll_back()
            await _send(send, 200, self.split.snapshot())
            return
        body = await _read(receive)
        if body is None:
            await _send(send, 413, {"message": "Request Too Long"})
            return
        event = proxy_event(scope, headers, body, self.stage, api_key=given)
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, self.invoke, event)
            status, response_headers, payload = proxy_response(result)
        except Exception:  # as API Gateway: the client learns nothing about the failure
            logger.exception("the function failed on request %s", event["requestContext"]["requestId"])
            await _send(send, 502, {"message": "Internal server error"})
            return
        await _send_raw(send, status, response_headers, payload)


def proxy_event(scope: Scope, headers: list[tuple[str, str]], body: bytes, stage: str, api_key: str) -> dict[str, Any]:
    """The REST API proxy event (format 1.0), as API Gateway and `sam local start-api` build it."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value  # the last value wins, as in API Gateway
        multi.setdefault(name, []).append(value)
    port = str(scope.get("server", ("127.0.0.1", 3000))[1])
    single.setdefault("X-Forwarded-Proto", "http")
    single.setdefault("X-Forwarded-Port", port)
    multi.setdefault("X-Forwarded-Proto", ["http"])
    multi.setdefault("X-Forwarded-Port", [port])
    query: dict[str, list[str]] = {}
    for pair in scope.get("query_string", b"").decode("latin-1").split("&"):
        if pair:
            key, _, value = pair.partition("=")
            query.setdefault(unquote_plus(key), []).append(unquote_plus(value))
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    is_text = not body or not content_type or content_type.startswith(TEXT_TYPES) or "form" in content_type
    try:
        text_body = body.decode("utf-8") if is_text else None
    except UnicodeDecodeError:
        text_body = None
    now = datetime.now(UTC)
    client = scope.get("client") or ("127.0.0.1", 0)
    user_agent = single.get("user-agent") or single.get("User-Agent")
    return {
        "body": (text_body if text_body is not None else base64.b64encode(body).decode()) if body else None,
        "headers": single,
        "multiValueHeaders": multi,
        "httpMethod": scope["method"],
        "isBase64Encoded": bool(body) and text_body is None,
        "path": scope["path"],
        "pathParameters": None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": single.get("host", "localhost"),
            "extendedRequestId": None,
            "httpMethod": scope["method"],
            "identity": {"apiKey": api_key, "sourceIp": client[0], "userAgent": user_agent},
            "path": f"/{stage}{scope['path']}",
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(time.time() * 1000),
            "resourceId": "local",
            "resourcePath": RESOURCE,
            "stage": stage,
        },
        "resource": RESOURCE,
        "stageVariables": None,
    }


def proxy_response(result: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A Lambda proxy response to status, headers and body; ValueError if it is not one (-> 502)."""
    if not isinstance(result, Mapping):
        raise ValueError(f"the function answered a {type(result).__name__}, not a proxy response object")
    allowed = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies"}
    unknown = set(result) - allowed
    if unknown:
        raise ValueError(f"the function's response has unknown keys {sorted(unknown)}")
    status = result.get("statusCode")
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"statusCode {status!r} is not an HTTP status")
    body = result.get("body") or ""
    if not isinstance(body, str):
        raise ValueError("the response body is not a string")
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    headers: dict[str, list[str]] = {k.lower(): [str(v)] for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers.setdefault(key.lower(), []).extend(str(v) for v in values)
    headers.pop("content-length", None)
    pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, vs in headers.items() for v in vs]
    return status, pairs, payload


async def _read(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, payload: Mapping[str, Any]) -> None:
    await _send_raw(send, status, [(b"content-type", b"application/json")], json.dumps(payload).encode())


async def _send_raw(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class InProcessInvoker:
    """Calls the handler in this process, as Lambda would call it in the container."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        result: Mapping[str, Any] = self.api.handle(event, fallback_request_id=str(uuid.uuid4()))
        return result


class LambdaInvoker:
    """Calls a function through the Lambda invoke API (the Runtime Interface Emulator in Docker)."""

    PATH = "/2015-03-31/functions/function/invocations"

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.url = base_url.rstrip("/") + self.PATH
        self.timeout = timeout

    def __call__(self, event: dict[str, Any]) -> Mapping[str, Any]:
        request = Request(self.url, data=json.dumps(event).encode(), method="POST")
        try:
            with urlopen(request, timeout=self.timeout) as response:
                result = json.loads(response.read())
        except HTTPError as exc:
            raise RuntimeError(f"the function failed with HTTP {exc.code}") from exc
        if not isinstance(result, Mapping) or "errorType" in result:
            # A function error (an exception in the handler): API Gateway answers 502.
            raise RuntimeError(f"the function failed: {str(result)[:300]}")
        return result
