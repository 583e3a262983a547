"""The serving container refuses a model whose bytes are not the ones `kubesage deploy` verified.

`kubesage deploy` sets KUBESAGE_MODEL_SHA256 on the SageMaker model (issue 18 item 1); here the image
is started as SageMaker starts it (`docker run IMAGE serve`, the model mounted read-only at
/opt/ml/model) with that variable, once with the trained model and once with it altered.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import pytest

from tests.container.conftest import docker

pytestmark = pytest.mark.container


def _serve_once(image: str, model_dir: Path, digest: str) -> tuple[int, str]:
    """Start `serve` with the digest; return its exit code and log once it exits (or 0 while it runs)."""
    name = f"kubesage-integrity-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", name, "--network", "none",
        "-v", f"{model_dir}:/opt/ml/model:ro", "-e", f"KUBESAGE_MODEL_SHA256={digest}",
        image, "serve",
    )  # fmt: skip
    try:
        # `docker wait` blocks until the container exits: a refused model exits at once.
        code = int(docker("wait", name, timeout=120).stdout.strip())
        return code, docker("logs", name).stderr
    finally:
        docker("rm", "-f", name, check=False, timeout=60)


def test_a_tampered_model_is_refused_in_one_line(image: str, trained_model: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    model_dir.chmod(0o755)
    recorded = hashlib.sha256((model_dir / "xgboost-model.ubj").read_bytes()).hexdigest()
    with (model_dir / "xgboost-model.ubj").open("ab") as handle:
        handle.write(b" ")  # replaced in S3 after deploy verified it
    for path in model_dir.iterdir():
        path.chmod(0o644)
    code, logs = _serve_once(image, model_dir, recorded)
    assert code != 0
    (line,) = [line for line in logs.splitlines() if line.startswith("kubesage serve:")]
    assert line.startswith("kubesage serve: ModelError: the model in /opt/ml/model has sha256 ")
    assert line.endswith(
        f"but KUBESAGE_MODEL_SHA256 records {recorded}: the artifact changed after registration; refusing it"
    )
    assert "Traceback" not in logs
