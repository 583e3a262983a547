"""Loopback ports for servers kubesage starts (MLflow, the model server) and their tests.

A server binds its port seconds after the port was chosen (MLflow's server imports for 4-5 s first).
A port from the kernel's ephemeral range can be taken meanwhile as the local port of any outgoing
connection on the machine: seen as uvicorn's "address already in use" in a test suite starting many
servers and clients at once. Ports below that range are never handed out that way, so a port is
chosen there, at random, and only another program choosing the very same port could take it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Linux's setting; elsewhere, the lowest start of the common defaults (Linux 32768, IANA and macOS 49152).
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_START = 32768
# Ports below these are often fixed services' (PostgreSQL's 5432, MLflow's 5000, 8080...).
LOWEST_CHOSEN = 10000
ATTEMPTS = 64


def ephemeral_start() -> int:
    """The first port the kernel hands out to outgoing connections."""
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the ephemeral range where one is free."""
    low, high = LOWEST_CHOSEN, ephemeral_start()
    if high - low >= ATTEMPTS:
        for port in random.sample(range(low, high), ATTEMPTS):
            if _bindable(port):
                return port
    with socket.socket() as sock:  # none free below the range (or no room there): the kernel's pick
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
