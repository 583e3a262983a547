"""The SageMaker-compatible HTTP surface as a plain ASGI callable.

Routes: `GET /ping`, `POST /invocations` and `POST /endpoints/{endpoint_name}/invocations` (the
path boto3's `sagemaker-runtime` client calls, so it works with endpoint_url pointed here).

A raw ASGI callable rather than a Starlette app: the hot path is a dict lookup, one body read
and one prediction, and skipping the framework's request/response objects measurably raises
single-record throughput (see bench/bench_serving.py). Starlette stays a dependency for the
rest of the project.

The model loads in a background thread when the server starts, so the socket answers at once
(SageMaker wants connections accepted within 250 ms) and /ping says 503 until the model is
converted and warmed in every worker process, and 200 for ever after (kubesage.serving.readiness).
An invocation that reaches a worker still loading (one uvicorn respawned) waits for its loader (up
to LOAD_WAIT_SECONDS) instead of answering 503.

Small bodies (the single-record hot path) are decoded and predicted on the event-loop thread, as
before. Larger ones go to the worker's one prediction thread, with a deadline, so a hostile 6 MiB
body never holds /ping past SageMaker's 2 s; at most MAX_QUEUED requests wait for that thread,
the next gets 429. Predictions themselves never run in two threads at once (a lock): oneDAL's
thread setting is process-global and the single-row algorithm object is reused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from kubesage.errors import KubesageError
from kubesage.http_errors import (
    HttpError,
    MethodNotAllowedError,
    ModelNotReadyError,
    NotFoundError,
    PayloadTooLargeError,
    PredictionTimeoutError,
    RequestError,
    ServerBusyError,
    ServerSideError,
)
from kubesage.monitoring.capture_writer import CaptureWriter
from kubesage.serving.codec import decode_request, encode_predictions
from kubesage.serving.json_body import error_body
from kubesage.serving.limits import MAX_BODY_BYTES
from kubesage.serving.negotiation import CSV, JSON, choose_output
from kubesage.serving.predictor import Predictor
from kubesage.serving.readiness import ServerReadiness

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Headers sent with an error: when to retry, or (a refused body whose unread rest is still on the
# wire) that the connection closes after the answer.
_ERROR_HEADERS: dict[type[HttpError], list[tuple[bytes, bytes]]] = {
    ServerBusyError: [(b"retry-after", b"1")],
    PredictionTimeoutError: [(b"retry-after", b"5")],
    PayloadTooLargeError: [(b"connection", b"close")],
}

# uvicorn's multiprocess supervisor stops (instead of restarting) a worker that exits with this.
STARTUP_FAILURE_EXIT_CODE = 3

_JSON_HEADER = (b"content-type", b"application/json")
_OUTPUT_TYPES = {CSV: CSV.encode(), JSON: JSON.encode()}
_ROUTES_ALLOW = {"ping": b"GET, HEAD", "invocations": b"POST", "execution-parameters": b"GET"}
# Bodies up to this size are answered on the event loop: decoding and predicting them takes well
# under a millisecond, less than the hand-off to a thread would add.
INLINE_BODY_BYTES = 16_384
# A prediction (queueing included) that takes longer is answered 503: SageMaker gives up at 60 s.
PREDICT_DEADLINE_SECONDS = 50.0
# Requests that may wait for a worker's prediction thread; the next one is told to retry (429).
MAX_QUEUED = 4
# How long an invocation that reaches a worker still loading the model waits for it.
LOAD_WAIT_SECONDS = 30.0


class ClientDisconnectedError(Exception):
    """The client went away before sending the whole body."""


class InferenceApp:
    """ASGI app serving one model directory. Build with `create_app`."""

    def __init__(
        self,
        model_dir: str | Path,
        threads: int = 1,
        exit_on_load_failure: bool = True,
        readiness: ServerReadiness | None = None,
        capture: CaptureWriter | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        # Data capture (kubesage.monitoring.capture): the hot path only samples and appends.
        self.capture = capture
        self.threads = threads
        self.exit_on_load_failure = exit_on_load_failure
        self.readiness = readiness or ServerReadiness()
        self.predictor: Predictor | None = None
        self.load_error: str | None = None
        self._loader: threading.Thread | None = None
        self._predict_lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self._queued = 0

    # ---------------------------------------------------------------- lifecycle

    def load(self) -> Predictor:
        """Load synchronously (tests, or callers that want to fail before serving)."""
        self.predictor = Predictor.load(self.model_dir, threads=self.threads)
        self.readiness.worker_loaded()
        return self.predictor

    def start_loading(self) -> None:
        if self._loader is None:
            self._loader = threading.Thread(target=self._load_in_background, name="model-loader", daemon=True)
            self._loader.start()

    def wait_until_loaded(self, timeout: float | None = None) -> bool:
        if self._loader is not None:
            self._loader.join(timeout)
        return self.predictor is not None

    def _load_in_background(self) -> None:
        try:
            self.load()
        except Exception as exc:  # the worker cannot serve; say why in the log, then stop it
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("model in %s failed to load: %s", self.model_dir, self.load_error)
            if self.exit_on_load_failure:
                sys.stderr.flush()
                os._exit(STARTUP_FAILURE_EXIT_CODE)

    # ---------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_loading()
                if self.capture is not None:
                    self.capture.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._executor.shutdown(wait=False, cancel_futures=True)
                if self.capture is not None:
                    self.capture.close()  # what is pending is written before the worker exits
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route(scope["path"])
        method = scope["method"]
        try:
            if route == "ping" and method in ("GET", "HEAD"):
                await self._ping(send)
            elif route == "execution-parameters" and method == "GET":
                await _send_json(send, execution_parameters(self.readiness.expected_workers))
            elif route == "invocations" and method == "POST":
                await self._invocations(scope, receive, send)
            elif route is not None:
                await _send_error(
                    send,
                    MethodNotAllowedError(f"{method} is not allowed on {scope['path']}"),
                    extra_headers=[(b"allow", _ROUTES_ALLOW[route])],
                )
            else:
                await _send_error(
                    send,
                    NotFoundError(
                        f"no route {scope['path']}; use GET /ping, POST /invocations, "
                        "POST /endpoints/{endpoint_name}/invocations or GET /execution-parameters"
                    ),
                )
        except ClientDisconnectedError:
            return  # nobody is left to answer
        except HttpError as exc:
            await _send_error(send, exc, extra_headers=_ERROR_HEADERS.get(type(exc)))
        except KubesageError as exc:  # a domain error raised while reading the request: the client's to fix
            await _send_error(send, RequestError(str(exc)))
        except Exception:
            logger.exception("unexpected error serving %s %s", method, scope["path"])
            await _send_error(send, ServerSideError("the server failed to answer; see the server log"))

    async def _ping(self, send: Send) -> None:
        if self.load_error is not None or not self.readiness.is_ready(worker_loaded=self.predictor is not None):
            await _send_error(send, ModelNotReadyError(self._not_ready_message()))
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        predictor = self.predictor or await self._wait_for_model()
        if predictor is None:
            await _send_error(send, ModelNotReadyError(self._not_ready_message()))
            return
        content_type, accept, content_length = _request_headers(scope)
        output = choose_output(accept)
        body = await _read_body(receive, content_length)
        if len(body) <= INLINE_BODY_BYTES and self._predict_lock.acquire(blocking=False):
            try:
                payload = _answer(predictor, body, content_type, output)
            finally:
                self._predict_lock.release()
        else:
            payload = await self._answer_in_thread(predictor, body, content_type, output)
        if self.capture is not None:
            self.capture.offer(body, content_type, payload, output)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", _OUTPUT_TYPES[output]), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _wait_for_model(self) -> Predictor | None:
        """The model once this worker's loader finishes, or None after LOAD_WAIT_SECONDS or a failure."""
        deadline = time.monotonic() + LOAD_WAIT_SECONDS
        while self.predictor is None and self.load_error is None and time.monotonic() < deadline:
            if self._loader is None or not self._loader.is_alive():
                break
            await asyncio.sleep(0.02)
        return self.predictor

    async def _answer_in_thread(
        self, predictor: Predictor, body: bytes, content_type: str | None, output: str
    ) -> bytes:
        """Decode and predict on the prediction thread, off the event loop, within the deadline."""
        # Small bodies only come here while a large one holds the model; they are cheap, so
        # they wait rather than being refused for the large bodies' sake.
        if len(body) > INLINE_BODY_BYTES and self._queued >= MAX_QUEUED:
            raise ServerBusyError(f"{MAX_QUEUED} large requests are already waiting for this worker; retry shortly")
        loop = asyncio.get_running_loop()
        self._queued += 1
        work = self._executor.submit(self._answer_locked, predictor, body, content_type, output)
        # The count drops when the thread is done with the work, not when the client stops waiting.
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._dequeue))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(work), PREDICT_DEADLINE_SECONDS)
        except TimeoutError:
            work.cancel()
            raise PredictionTimeoutError(
                f"the prediction did not finish within {PREDICT_DEADLINE_SECONDS:.0f} s; send fewer rows"
            ) from None

    def _dequeue(self) -> None:
        self._queued -= 1

    def _answer_locked(self, predictor: Predictor, body: bytes, content_type: str | None, output: str) -> bytes:
        features = decode_request(body, content_type, predictor.n_features, predictor.schema)
        with self._predict_lock:
            probabilities = predictor.predict(features)
        return encode_predictions(probabilities, output)

    def _not_ready_message(self) -> str:
        if self.load_error:
            return f"the model failed to load: {self.load_error}"
        if self.predictor is not None:
            return "the model is still loading in another worker; retry when GET /ping answers 200"
        return "the model is still loading; retry when GET /ping answers 200"


def create_app(
    model_dir: str | Path,
    threads: int = 1,
    exit_on_load_failure: bool = True,
    readiness: ServerReadiness | None = None,
    capture: CaptureWriter | None = None,
) -> InferenceApp:
    """An ASGI app for `model_dir`; it starts loading the model when the server sends lifespan startup."""
    return InferenceApp(
        model_dir, threads=threads, exit_on_load_failure=exit_on_load_failure, readiness=readiness, capture=capture
    )


def _answer(predictor: Predictor, body: bytes, content_type: str | None, output: str) -> bytes:
    features = decode_request(body, content_type, predictor.n_features, predictor.schema)
    return encode_predictions(predictor.predict(features), output)


def execution_parameters(workers: int) -> dict[str, Any]:
    """What SageMaker Batch Transform asks a container before it sends data (GET /execution-parameters).

    One transform request per worker at a time; several records per request, split at lines; and
    requests no larger than the body this server accepts (6 MiB), so no mini-batch is refused.
    """
    return {
        "MaxConcurrentTransforms": max(1, workers),
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": MAX_BODY_BYTES // (1024 * 1024),
    }


async def _send_json(send: Send, document: dict[str, Any]) -> None:
    payload = json.dumps(document).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [_JSON_HEADER, (b"content-length", b"%d" % len(payload))],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _route(path: str) -> str | None:
    if path == "/invocations":
        return "invocations"
    if path == "/ping":
        return "ping"
    if path == "/execution-parameters":
        return "execution-parameters"
    parts = path.split("/")
    # "/endpoints/<name>/invocations" splits into ["", "endpoints", name, "invocations"]
    if len(parts) == 4 and parts[1] == "endpoints" and parts[2] and parts[3] == "invocations":
        return "invocations"
    return None


def _request_headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """Content-Type, Accept and Content-Length (ASGI servers lower-case the names); the rest is skipped.

    Only these three are read, so only these are decoded: a dict of every header cost as much as
    the parse of a single-record body.
    """
    content_type = accept = content_length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"accept":
            accept = value.decode("latin-1")
        elif name == b"content-length":
            content_length = value.decode("latin-1")
    return content_type, accept, content_length


async def _read_body(receive: Receive, content_length: str | None) -> bytes:
    """The whole body, refusing anything over MAX_BODY_BYTES before reading it when it is declared."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise RequestError(f"Content-Length {content_length!r} is not a number") from None
        if declared > MAX_BODY_BYTES:
            raise PayloadTooLargeError(_too_large(declared))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLargeError(_too_large(size, at_least=True))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, at_least: bool = False) -> str:
    shown = f"at least {size:,}" if at_least else f"{size:,}"
    return f"the body is {shown} bytes; the limit is {MAX_BODY_BYTES:,} bytes (6 MiB, as SageMaker real-time endpoints)"


async def _send_error(send: Send, error: HttpError, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = error_body(error)
    headers = [_JSON_HEADER, (b"content-length", str(len(payload)).encode()), *(extra_headers or [])]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
