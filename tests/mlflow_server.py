"""Start a real MLflow tracking server process: database + artifact store, on loopback by default.

Used by `kubesage` users who want a shared server instead of the embedded SQLite file, and by the
integration tests (a real server, not a mock). Production deployments put it behind auth; see
mlflow/README.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kubesage.errors import TrackingError
from kubesage.util.ports import free_port


@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        """Stop the server and every process it started (uvicorn workers and the like)."""
        _signal_group(self.process, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and everything it started: for a server whose store is thrown away.

        `stop` waits for the `mlflow server` command's own process, which after its uvicorn worker has
        gone spends ~2 s of CPU (more on a loaded machine) tearing its interpreter down; a throwaway
        store has nothing to flush (SQLite commits are atomic), so a teardown need not wait for that.
        """
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait(timeout=10)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def start_mlflow_server(
    root: Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 240.0,
    store_template: Path | None = None,
) -> MlflowServer:
    """A server with a SQLite backend in `root` and artifacts proxied into `root/artifacts`.

    `store_template`, an empty store with every migration applied (tests/servers.py,
    `migrated_sqlite_template`), is copied in as the backend when `root` has none yet: a new store
    otherwise runs MLflow's ~60 migrations as the server starts (2-3 s, more on a loaded machine).
    """
    root.mkdir(parents=True, exist_ok=True)
    store = root / "mlflow.db"
    if store_template is not None and not store.exists():
        shutil.copyfile(store_template, store)
    port = port or free_port()
    log_path = root / "mlflow-server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # MLflow 3's server also starts a job runner (seven huey consumer processes) for GenAI jobs that
    # kubesage never submits: off, it starts faster and costs far less CPU. The server gets its own
    # process group so `stop` (or a failed start) ends everything it spawned.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingError(f"mlflow server exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return MlflowServer(process=process, url=url, log_path=log_path)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)  # a refused connection costs nothing; every tenth of a second counts per start
    _signal_group(process, signal.SIGKILL)
    raise TrackingError(f"mlflow server did not answer on {url} within {timeout:.0f} s; see {log_path}")
