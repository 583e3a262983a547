"""Run the real `kubesage` console script, and start and stop server processes, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.cli_zygote import CliResult, shared_zygote

KUBESAGE = str(Path(sys.executable).with_name("kubesage"))
START_TIMEOUT = 90.0


def run_cli(
    args: list[str], cwd: Path, tracking_uri: str, timeout: float = 600, *, fresh_process: bool = False
) -> CliResult:
    """`kubesage ARGS` in `cwd`, tracking into `tracking_uri`: a new process forked from the test
    process's zygote (tests/cli_zygote.py, which says what that leaves out), or with `fresh_process`
    the console script started from scratch, for tests of everything the console shows."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    for name in ("KUBESAGE_MLFLOW_PARENT_RUN_ID", "KUBESAGE_MLFLOW_EXPERIMENT_ID", "KUBESAGE_FAILURE_DIR"):
        env.pop(name, None)
    if not fresh_process:
        return shared_zygote().run(KUBESAGE, args, cwd, env, timeout)
    fresh = subprocess.run(
        [KUBESAGE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliResult(fresh.returncode, fresh.stdout, fresh.stderr)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> list[int]:
    """Poll /ping until 200; returns the statuses seen (503 while loading, connection errors as 0)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    # One client for the whole wait (each new one builds an SSL context, ~20 ms of CPU per poll, taken
    # from the server starting beside it), still a new connection per ping.
    with httpx.Client(timeout=2, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"server exited with {process.returncode}:\n{output}")
            try:
                status = client.get(f"{url}/ping").status_code
            except httpx.TransportError:
                status = 0
            seen.append(status)
            if status == 200:
                return seen
            time.sleep(0.05)
    raise AssertionError(f"server not ready after {timeout} s; /ping said {seen[-5:]}")


def stop_server(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start_server(
    model_dir: Path, port: int, workers: int = 1, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`kubesage serve` on loopback, as a user starts it (`env` added to this process's environment)."""
    command = [sys.executable, "-m", "kubesage.cli", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--threads", "1"]
    environment = {**os.environ, **env} if env else None
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment)


@contextmanager
def served(model_dir: Path, workers: int = 1, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """A running `kubesage serve` of `model_dir`, ready; its URL. Stopped on exit."""
    from kubesage.util.ports import free_port

    port = free_port()
    process = start_server(model_dir, port, workers, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        stop_server(process)
