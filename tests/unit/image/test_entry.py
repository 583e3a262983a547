"""The in-container dispatcher, run in-process and as `python -m kubesage.image`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubesage.image.entry import drop_privileges, main, parse_serve_args
from kubesage.image.train import ENV_BASE


def test_unknown_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit"]) == 2
    assert "train|serve" in capsys.readouterr().err
    assert main([]) == 2


def test_train_rejects_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--max_depth", "5"]) == 1
    assert "train takes no arguments" in capsys.readouterr().err


def test_serve_reports_a_missing_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BASE, str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "kubesage.image", "serve", "--port", "18099"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, ENV_BASE: str(tmp_path)},
    )
    assert result.returncode != 0
    assert f"{tmp_path / 'model'}" in result.stderr
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_failure_through_the_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubesage.image", "train"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, ENV_BASE: str(tmp_path)},
    )
    assert result.returncode == 2
    assert "input channel 'train' is missing" in (tmp_path / "output" / "failure").read_text()


def test_serve_refuses_a_model_whose_digest_differs_in_one_line(trained_model: Path, tmp_path: Path) -> None:
    """The serving container checks the model against the digest `kubesage deploy` verified (issue 18 item 1)."""
    import hashlib
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    recorded = hashlib.sha256((model_dir / "xgboost-model.ubj").read_bytes()).hexdigest()
    with (model_dir / "xgboost-model.ubj").open("ab") as handle:
        handle.write(b" ")  # tampered after registration
    result = subprocess.run(
        [sys.executable, "-m", "kubesage.image", "serve", "--port", "18098"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, ENV_BASE: str(tmp_path), "KUBESAGE_MODEL_SHA256": recorded},
    )
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("kubesage serve:")]
    assert line.startswith(f"kubesage serve: ModelError: the model in {model_dir} has sha256 ")
    assert line.endswith(
        f"but KUBESAGE_MODEL_SHA256 records {recorded}: the artifact changed after registration; refusing it"
    )
    assert "Traceback" not in result.stderr


def test_serve_arguments() -> None:
    args = parse_serve_args(["--model-dir", "/m", "--port", "9000", "--workers", "2", "--threads", "1"])
    assert (args.model_dir, args.port, args.workers, args.threads) == (Path("/m"), 9000, 2, 1)


def test_no_privilege_drop_without_the_user() -> None:
    # The user exists only in the image; elsewhere (and when not root) the process keeps its user.
    uid = os.getuid()
    assert drop_privileges("kubesage-user-that-does-not-exist") is False
    assert drop_privileges("root") is False
    assert os.getuid() == uid


def test_an_unreadable_model_folder_is_a_model_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As SageMaker local mode mounts it: a 0700 temporary folder of root's, read by the image's user.
    from kubesage.errors import ModelError
    from kubesage.image import entry

    monkeypatch.setattr(entry.os, "access", lambda path, mode: Path(path) != tmp_path)
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(ModelError, match=rf"{tmp_path} not readable by user 'kubesage'.*KUBESAGE_SERVE_USER=root"):
        entry.check_readable(tmp_path, "kubesage")
