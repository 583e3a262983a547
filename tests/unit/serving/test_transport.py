"""Write coalescing under uvicorn's protocol (kubesage.serving.transport)."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from kubesage.serving.transport import CoalescingTransport


async def _pair() -> tuple[asyncio.Transport, socket.socket]:
    """A real loopback TCP transport and the raw socket at its other end."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    theirs.setblocking(False)
    return transport, theirs


class _CountingTransport(CoalescingTransport):
    """Counts the writes that reach the wrapped transport."""

    sends: list[bytes]

    def flush(self) -> None:
        pending = b"".join(self._pending)
        super().flush()
        if pending:
            self.sends.append(pending)


def test_writes_in_one_loop_turn_leave_as_one_send() -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        transport, peer = await _pair()
        coalescing = _CountingTransport(transport, asyncio.get_running_loop())
        coalescing.sends = []
        coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        coalescing.write(b"ok")
        assert coalescing.get_write_buffer_size() == 40
        await asyncio.sleep(0)  # one loop turn
        await asyncio.sleep(0.05)
        received = peer.recv(1024)
        coalescing.write(b"late")
        coalescing.close()  # close sends what is still queued
        await asyncio.sleep(0.05)
        received += peer.recv(1024)
        peer.close()
        return coalescing.sends, received

    sends, received = asyncio.run(scenario())
    assert sends == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b"late"]
    assert received == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\noklate"


def test_abort_drops_queued_writes_and_delegates_the_rest() -> None:
    async def scenario() -> tuple[bool, bytes]:
        transport, peer = await _pair()
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        assert coalescing.get_extra_info("socket") is not None and coalescing.is_reading()
        coalescing.write(b"never sent")
        coalescing.abort()
        await asyncio.sleep(0.05)
        try:
            received = peer.recv(1024)
        except ConnectionResetError:
            received = b""
        peer.close()
        return coalescing.is_closing(), received

    closing, received = asyncio.run(scenario())
    assert closing and received == b""


def test_the_header_timeout_is_10_s_unless_the_environment_sets_another() -> None:
    from kubesage.serving.transport import ENV_HEADER_TIMEOUT, HEADER_TIMEOUT_SECONDS, header_timeout_seconds

    assert header_timeout_seconds({}) == HEADER_TIMEOUT_SECONDS == 10.0
    assert header_timeout_seconds({ENV_HEADER_TIMEOUT: " "}) == 10.0
    assert header_timeout_seconds({ENV_HEADER_TIMEOUT: "2.5"}) == 2.5
    assert header_timeout_seconds({ENV_HEADER_TIMEOUT: "300"}) == 300.0


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("ten", "is not a number of seconds"),
        ("0", "is out of range: give seconds above 0 and at most 300"),
        ("-1", "is out of range"),
        ("301", "is out of range"),
        ("nan", "is out of range"),
        ("inf", "is out of range"),
    ],
)
def test_a_bad_header_timeout_is_refused_naming_the_variable(raw: str, says: str) -> None:
    from kubesage.errors import KubesageError
    from kubesage.serving.transport import ENV_HEADER_TIMEOUT, header_timeout_seconds

    with pytest.raises(KubesageError, match=re.escape(f"{ENV_HEADER_TIMEOUT}={raw!r} {says}")):
        header_timeout_seconds({ENV_HEADER_TIMEOUT: raw})
