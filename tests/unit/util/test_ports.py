"""Ports for the servers kubesage starts: free, and out of the range outgoing connections take theirs from."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kubesage.util import ports


def test_a_port_is_free_and_below_the_ephemeral_range() -> None:
    chosen = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST_CHOSEN <= port < ports.ephemeral_start() for port in chosen)
    assert len(chosen) > 1  # chosen at random, not the same port for every server
    for port in chosen:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_held_elsewhere_is_never_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        held = holder.getsockname()[1]
        monkeypatch.setattr(ports, "LOWEST_CHOSEN", held)  # the only candidate below the range: the held port
        monkeypatch.setattr(ports, "ephemeral_start", lambda: held + 1)
        monkeypatch.setattr(ports, "ATTEMPTS", 1)
        assert ports.free_port() != held  # refused, so the kernel's pick


def test_without_the_kernels_setting_the_common_default_bounds_the_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert ports.ephemeral_start() == ports.DEFAULT_EPHEMERAL_START
    assert ports.free_port() < ports.DEFAULT_EPHEMERAL_START
