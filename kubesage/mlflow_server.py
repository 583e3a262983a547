"""Start a real MLflow tracking server process: database + artifact store, on loopback by default.

Used by `kubesage` users who want a shared server instead of the embedded SQLite file, and by the
integration tests (a real server, not a mock). Production deployments put it behind auth; see
mlflow/README.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kubesage.errors import TrackingError
from kubesage.ports import free_port


@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_mlflow_server(
    root: Path, host: str = "127.0.0.1", port: int | None = None, timeout: float = 90.0
) -> MlflowServer:
    """A server with a SQLite backend in `root` and artifacts proxied into `root/artifacts`."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = root / "mlflow-server.log"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
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
            time.sleep(0.5)
    process.kill()
    raise TrackingError(f"mlflow server did not answer on {url} within {timeout:.0f} s; see {log_path}")
