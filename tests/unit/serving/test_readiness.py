"""/ping's readiness is the whole server's: no 200 until every worker has loaded, no 503 after.

Two InferenceApp objects sharing one readiness folder stand in for two uvicorn workers (the
folder is all the workers share; tests/integration/test_server_live.py runs the real processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from starlette.testclient import TestClient

from kubesage.serving.app import create_app
from kubesage.serving.readiness import ALL_READY_MARKER, ServerReadiness


def worker(model_dir: Path, folder: Path, workers: int = 2) -> tuple[object, TestClient]:
    app = create_app(model_dir, exit_on_load_failure=False, readiness=ServerReadiness(folder, workers))
    return app, TestClient(app)


def test_a_loaded_worker_says_503_until_every_worker_has_loaded(model_dir: Path, tmp_path: Path) -> None:
    first, first_client = worker(model_dir, tmp_path)
    second, second_client = worker(model_dir, tmp_path)

    first.load()  # type: ignore[attr-defined]
    response = first_client.get("/ping")
    assert response.status_code == 503
    assert "another worker" in response.json()["message"]
    assert second_client.get("/ping").status_code == 503

    second.load()  # type: ignore[attr-defined]
    assert [first_client.get("/ping").status_code, second_client.get("/ping").status_code] == [200, 200]
    assert (tmp_path / ALL_READY_MARKER).exists()


def test_never_503_after_ready_even_from_a_respawned_worker(model_dir: Path, tmp_path: Path) -> None:
    only, only_client = worker(model_dir, tmp_path, workers=1)
    only.load()  # type: ignore[attr-defined]
    assert only_client.get("/ping").status_code == 200

    _, respawned_client = worker(model_dir, tmp_path, workers=1)  # uvicorn replaced a worker: not loaded yet
    assert respawned_client.get("/ping").status_code == 200


def test_a_worker_that_loaded_then_died_does_not_count(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f"worker-{int(dead.stdout)}-0000").touch()
    readiness = ServerReadiness(tmp_path, expected_workers=2)
    readiness.worker_loaded()
    assert not readiness.is_ready(worker_loaded=True)
    (tmp_path / f"worker-{os.getppid()}-0001").touch()  # a live process
    assert readiness.is_ready(worker_loaded=True)


def test_without_a_folder_the_worker_alone_decides() -> None:
    readiness = ServerReadiness()
    assert not readiness.is_ready(worker_loaded=False)
    assert readiness.is_ready(worker_loaded=True)
    assert readiness.is_ready(worker_loaded=False)  # sticky: the model never unloads
