"""uvicorn's httptools protocol, hardened, over a transport that sends each response in one write.

Hardening (uvicorn's httptools protocol has none of these):
- Slow clients: a request's headers must arrive within the header timeout (HEADER_TIMEOUT_SECONDS,
  or KUBESAGE_HEADER_TIMEOUT_SECONDS from the environment, `header_timeout_seconds`) of its first byte
  (or of the connection, for a client that connects and sends nothing), its body within
  BODY_TIMEOUT_SECONDS of the headers; otherwise 408 and the connection closes. A client
  trickling one byte at a time can no longer hold a connection for ever.
- Headers over MAX_HEADER_BYTES: 431.
- More than MAX_CONNECTIONS open connections on one worker: the request gets 429 (uvicorn's own
  limit_concurrency answers 503, a server error for what is the client's load).
- Lingering close (as nginx does): when a response is sent before the request body has all
  arrived (a 413 for a body over 6 MiB), the server half-closes and keeps reading and discarding
  for up to LINGER_SECONDS / LINGER_MAX_BYTES before it closes. Closing a socket with unread
  data makes the kernel send a reset, which destroys the 413 before a client that sends the
  whole body first (Python's urllib, many SDKs) reads it.

uvicorn writes the status line and headers, then the body, as two `transport.write` calls; with
TCP_NODELAY (uvloop's default) each becomes its own segment, its own syscall and its own wake-up
of the client. For a single-record prediction those two writes were a quarter of the server's CPU
time (py-spy, bench/bench_serving.py). Writes made during one event-loop turn are held and sent
together at the start of the next turn, so a response written in one go leaves as one segment,
and a streamed response still leaves promptly, a loop turn later.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kubesage.errors import KubesageError
from kubesage.http_errors import HeadersTooLargeError, HttpError, RequestTimeoutError, ServerBusyError
from kubesage.serving.json_body import error_body
from kubesage.serving.limits import MAX_BODY_BYTES

HEADER_TIMEOUT_SECONDS = 10.0  # the default; ENV_HEADER_TIMEOUT sets another
ENV_HEADER_TIMEOUT = "KUBESAGE_HEADER_TIMEOUT_SECONDS"
MAX_HEADER_TIMEOUT_SECONDS = 300.0
BODY_TIMEOUT_SECONDS = 30.0
MAX_HEADER_BYTES = 32_768
MAX_CONNECTIONS = 256
LINGER_SECONDS = 10.0
LINGER_MAX_BYTES = 4 * MAX_BODY_BYTES


def header_timeout_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """The header timeout: ENV_HEADER_TIMEOUT if set (seconds, above 0 and at most 300), else 10 s."""
    raw = environ.get(ENV_HEADER_TIMEOUT, "").strip()
    if not raw:
        return HEADER_TIMEOUT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        raise KubesageError(f"environment variable {ENV_HEADER_TIMEOUT}={raw!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_HEADER_TIMEOUT_SECONDS:
        raise KubesageError(
            f"environment variable {ENV_HEADER_TIMEOUT}={raw!r} is out of range: "
            f"give seconds above 0 and at most {MAX_HEADER_TIMEOUT_SECONDS:.0f}"
        )
    return seconds


# Read once per worker: `kubesage serve` checked the value before any worker started (resolve_config).
_header_timeout = functools.cache(header_timeout_seconds)


class CoalescingTransport(asyncio.Transport):
    """Wraps a transport: writes queue until the loop's next turn, then go out as one `write`."""

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        linger: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(extra=None)
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        # Asked at close(): is part of the request body still on its way?
        self._linger = linger
        self.lingering = False
        self.lingered_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is queued now (a no-op when nothing is)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        if self.lingering or self._transport.is_closing():
            return
        if self._linger is not None and self._linger() and self._transport.can_write_eof():
            # Half-close: the client reads the response and our FIN; what it still sends is
            # read and dropped (see the protocol's data_received) until it closes or time is up.
            self.lingering = True
            self._transport.write_eof()
            self._transport.resume_reading()
            self._loop.call_later(LINGER_SECONDS, self.close_now)
            return
        self._transport.close()

    def close_now(self) -> None:
        """Close without lingering (a timed-out client, or one that sent too much after the answer)."""
        self.flush()
        if not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol through a CoalescingTransport, with the limits in the module docstring."""

    transport: CoalescingTransport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop, linger=self._body_incomplete))
        self._awaiting_headers = True
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(_header_timeout(), "the request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.lingering:
            self.transport.lingered_bytes += len(data)
            if self.transport.lingered_bytes > LINGER_MAX_BYTES:
                self.transport.close_now()
            return
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            self._refuse(HeadersTooLargeError(f"the request headers exceed {MAX_HEADER_BYTES:,} bytes"))

    def eof_received(self) -> None:
        if self.transport.lingering:
            self.transport.close_now()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm(_header_timeout(), "the request headers")

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._arm(BODY_TIMEOUT_SECONDS, "the request body")
        refusal = None
        if len(self.connections) > MAX_CONNECTIONS:
            refusal = _refusal(
                ServerBusyError(f"this worker has over {MAX_CONNECTIONS} open connections; retry shortly")
            )
        elif len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > MAX_HEADER_BYTES:
            # Headers that arrived in one read are only measured here, once parsed.
            refusal = _refusal(HeadersTooLargeError(f"the request headers exceed {MAX_HEADER_BYTES:,} bytes"))
        if refusal is None:
            super().on_headers_complete()
            return
        app, self.app = self.app, refusal
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        super().on_response_complete()

    def _body_incomplete(self) -> bool:
        return self.cycle is not None and self.cycle.more_body

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out, seconds, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self, seconds: float, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close_now()
            return
        self._refuse(RequestTimeoutError(f"{what} did not arrive within {seconds:.0f} s"))

    def _refuse(self, error: HttpError) -> None:
        """Answer before (or instead of) the app, then close: the request cannot be read further."""
        self._disarm()
        body = error_body(error)
        head = (
            f"HTTP/1.1 {error.status} {_REASONS[error.status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close_now()


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _refusal(error: HttpError) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """An ASGI app that answers every request with this error and closes the connection."""
    status = error.status
    body = error_body(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    if isinstance(error, ServerBusyError):
        headers.append((b"retry-after", b"1"))

    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return refuse
