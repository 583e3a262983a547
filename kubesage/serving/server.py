"""Run the inference server: uvicorn (httptools + uvloop), N worker processes, one model copy each.

Process model, explicitly:
- `workers` processes (default: the CPUs this process may use, cgroup quota included; env
  MODEL_SERVER_WORKERS as in SageMaker's own containers). Each loads and converts the model once.
  One worker per CPU, even with the load generator on the same 2 CPUs: measured with wrk on the
  same host, 2 workers matched 1 on a single client's p50 (0.07 ms) and beat it with 8 clients
  (about 1.3-1.5x requests/s) and on 1,000-row batches (about 1.5x), since a connection's
  request never waits behind another connection's prediction.
- `threads` oneDAL/XGBoost threads per worker (default: CPUs // workers, at least 1; env
  KUBESAGE_SERVING_THREADS). Single-record latency gains nothing from more threads; batch
  throughput does, so fewer workers with more threads suit batch-heavy traffic.
- Port: `port`, else SAGEMAKER_BIND_TO_PORT, else 8080.
- SIGTERM: stop accepting, finish in-flight requests for up to `graceful_timeout` (20 s, inside
  SageMaker's 30 s before SIGKILL), then exit.

uvicorn's httptools protocol runs over kubesage.serving.transport's write-coalescing transport,
so each response leaves in one send instead of two; the same module bounds connections per worker,
slow clients (header and body read timeouts), header size, and closes a refused upload lingeringly.

Why uvicorn: granian 2.8 (Rust HTTP, ASGI and RSGI interfaces, same 2 workers) was measured
against it on this app. It served 8 clients up to ~1.8x faster, but a single client's p50 rose
from ~0.1 ms to ~0.25 ms (the hand-off between its Rust runtime thread and Python's) unless run
single-threaded, where the gain went away; not clearly faster, so uvicorn stays.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from kubesage.churn.modelio import ENV_MODEL_SHA256, find_model_file, load_schema_if_present, verify_model_sha256
from kubesage.errors import KubesageError, ModelError
from kubesage.monitoring.capture import CaptureConfig
from kubesage.monitoring.capture_writer import CaptureWriter
from kubesage.serving.app import InferenceApp, create_app
from kubesage.serving.readiness import ENV_EXPECTED_WORKERS, ENV_READY_DIR, ServerReadiness
from kubesage.serving.transport import (
    ENV_HEADER_TIMEOUT,
    HEADER_TIMEOUT_SECONDS,
    CoalescingHttpToolsProtocol,
    header_timeout_seconds,
)

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8080
GRACEFUL_TIMEOUT_SECONDS = 20
# SageMaker's front end reuses connections; keep them open longer than its idle timeout would.
KEEP_ALIVE_SECONDS = 75
WORKER_HEALTHCHECK_SECONDS = 300
ENV_MODEL_DIR = "KUBESAGE_MODEL_DIR"
ENV_THREADS = "KUBESAGE_SERVING_THREADS"
ENV_WORKERS = "MODEL_SERVER_WORKERS"
ENV_PORT = "SAGEMAKER_BIND_TO_PORT"
# The one host default: loopback, so `kubesage serve` on a laptop is not reachable from the network;
# the image sets KUBESAGE_SERVE_HOST=0.0.0.0, as SageMaker requires of a serving container.
ENV_HOST = "KUBESAGE_SERVE_HOST"
DEFAULT_HOST = "127.0.0.1"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class ServerConfig:
    model_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    threads: int = 1
    graceful_timeout: int = GRACEFUL_TIMEOUT_SECONDS
    header_timeout: float = HEADER_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise KubesageError(f"port {self.port} is out of range 1-65535")
        if self.workers < 1:
            raise KubesageError(f"workers must be at least 1, got {self.workers}")
        if self.threads < 1:
            raise KubesageError(f"threads must be at least 1, got {self.threads}")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota if set."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def resolve_config(
    model_dir: str | Path,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> ServerConfig:
    """Explicit arguments win, then the SageMaker-style environment variables, then the CPU count."""
    cpus = available_cpus()
    # One worker per CPU: see the module docstring for the measurements behind this default.
    resolved_workers = workers if workers is not None else _env_int(ENV_WORKERS) or cpus
    resolved_threads = threads if threads is not None else _env_int(ENV_THREADS) or max(1, cpus // resolved_workers)
    resolved_port = port if port is not None else _env_int(ENV_PORT) or DEFAULT_PORT
    return ServerConfig(
        model_dir=Path(model_dir).resolve(),
        host=host or os.environ.get(ENV_HOST) or DEFAULT_HOST,
        port=resolved_port,
        workers=resolved_workers,
        threads=resolved_threads,
        header_timeout=header_timeout_seconds(),
    )


def check_model_dir(model_dir: str | Path) -> None:
    """Fail in the parent, with a clear message, before any worker starts: files present and parseable."""
    if not Path(model_dir).exists():
        raise ModelError(f"model directory {model_dir} does not exist")
    find_model_file(model_dir)
    load_schema_if_present(model_dir)
    expected = os.environ.get(ENV_MODEL_SHA256, "").strip()
    if expected:  # `kubesage deploy` sets it on the SageMaker model: the digest it verified
        verify_model_sha256(model_dir, expected, ENV_MODEL_SHA256)


def serve(
    model_dir: str | Path,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    capture: CaptureConfig | None = None,
) -> None:
    """Serve `model_dir` until SIGTERM/SIGINT. Blocks. Raises ModelError if the model dir is unusable.

    `capture` (else KUBESAGE_CAPTURE_DIR and friends, as the image's `serve` is configured) writes
    SageMaker data-capture records of the requests answered (kubesage.monitoring.capture).
    """
    config = resolve_config(model_dir, host=host, port=port, workers=workers, threads=threads)
    check_model_dir(config.model_dir)
    if capture is not None:
        os.environ.update(capture.to_env())
    capture = CaptureConfig.from_env()  # checked here, in the parent, before any worker starts
    if capture is not None:
        capture.directory.mkdir(parents=True, exist_ok=True)
        logger.info("capturing %g%% of requests to %s", capture.percent, capture.directory)
    # Workers are spawned processes: they get their settings through the environment.
    os.environ[ENV_MODEL_DIR] = str(config.model_dir)
    os.environ[ENV_THREADS] = str(config.threads)
    os.environ[ENV_HEADER_TIMEOUT] = repr(config.header_timeout)
    # OpenMP pools (XGBoost) follow the same explicit count instead of the host's core count.
    os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    logger.info(
        "serving %s on %s:%d with %d worker(s) x %d thread(s)",
        config.model_dir,
        config.host,
        config.port,
        config.workers,
        config.threads,
    )
    uvicorn_config = uvicorn.Config(
        "kubesage.serving.worker:app_from_env",  # lean XGBoost first (worker.py), then this module's factory
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        http=CoalescingHttpToolsProtocol,
        loop="uvloop",
        lifespan="on",
        # No WebSocket endpoint exists: an upgrade request is served (or refused) as plain HTTP.
        ws="none",
        # No per-request logging or client-address rewriting in the hot path: the access log and
        # the X-Forwarded-For middleware each cost a few percent of a single-record request.
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=config.graceful_timeout,
        log_config=log_config(),
        **_healthcheck_option(),
    )
    # /ping's one truth for all workers (kubesage.serving.readiness), gone with the server.
    ready_dir = tempfile.mkdtemp(prefix="kubesage-ready-")
    os.environ[ENV_READY_DIR] = ready_dir
    os.environ[ENV_EXPECTED_WORKERS] = str(config.workers)
    try:
        with _sigterm_exits():
            run_uvicorn(uvicorn_config)
    finally:
        shutil.rmtree(ready_dir, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """While serving, SIGTERM ends the process as a return would: exit 0, through `finally` blocks and
    atexit. The handler found before is back afterwards (serve() called from Python returns).

    uvicorn shuts down gracefully on SIGTERM, then raises it again for the handler it found. With the
    default one there, a single-worker server died of the signal at that point and left its ready
    folder and the model it downloaded (`--model models:/...`) in the temporary folder. The
    multi-worker supervisor returns instead, and exits 0: both now end alike.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _healthcheck_option() -> dict[str, Any]:
    """uvicorn >= 0.41 kills a worker that does not answer its supervisor within 5 s of being spawned.

    A worker spawned on a busy host (2 CPUs shared with the load, importing XGBoost and daal4py)
    took longer, so every worker was killed and respawned for ever and the server never became
    ready. The model's own readiness is /ping's job, not the supervisor's.
    """
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        return {"timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS}
    return {}


def run_uvicorn(config: uvicorn.Config) -> None:
    """uvicorn.run's worker logic, except that the parent listens on the socket itself.

    uvicorn only calls listen() inside a worker once it has imported the app (seconds, with
    XGBoost and daal4py); listening in the parent lets the kernel accept connections at once, as
    SageMaker asks (within 250 ms), and /ping answers them as soon as a worker is up.
    """
    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    sock.listen(config.backlog)
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            # uvicorn < 0.40 also wanted target=server.run; newer versions build the server per worker.
            needs_target = "target" in inspect.signature(Multiprocess).parameters
            extra = {"target": server.run} if needs_target else {}
            Multiprocess(config, sockets=[sock], **extra).run()
        else:
            server.run(sockets=[sock])
    finally:
        sock.close()


def log_config() -> dict[str, Any]:
    """uvicorn's logging setup, plus kubesage's own loggers (model load, errors) at INFO."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["kubesage"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def app_from_env() -> InferenceApp:
    """The app factory each uvicorn worker calls (settings come from serve() via the environment)."""
    model_dir = os.environ.get(ENV_MODEL_DIR)
    if not model_dir:
        raise KubesageError(f"{ENV_MODEL_DIR} is not set; start the server with kubesage.serving.serve()")
    capture = CaptureConfig.from_env()
    return create_app(
        model_dir,
        threads=_env_int(ENV_THREADS) or 1,
        readiness=ServerReadiness.from_env(),
        capture=CaptureWriter(capture) if capture is not None else None,
    )


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise KubesageError(f"environment variable {name}={raw!r} is not an integer") from None
