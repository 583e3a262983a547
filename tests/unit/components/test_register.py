"""Register (issue 10, items 10-11): one create with its tags, and a retried step returns the same version.

A real MLflow SQLite store and the suite's model trained on the real churn data.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest

from kubesage import tracking as t
from kubesage.components.evaluate import evaluate_model, write_evaluation
from kubesage.components.steps import register_step


@pytest.fixture
def evaluation(prepared: dict[str, Path], model_dir: Path, tmp_path: Path) -> Path:
    return write_evaluation(evaluate_model(prepared["test"], model_dir), tmp_path / "evaluation.json")


def _in_pipeline_run(monkeypatch: pytest.MonkeyPatch, uri: str) -> t.PipelineRun:
    run = t.start_pipeline_run("register-test", "local", {}, uri=uri)
    for name, value in run.step_env.items():
        monkeypatch.setenv(name, value)
    return run


def test_a_retried_register_step_returns_the_same_version(
    mlflow_sqlite: str,
    monkeypatch: pytest.MonkeyPatch,
    model_dir: Path,
    prepared: dict[str, Path],
    evaluation: Path,
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    run = _in_pipeline_run(monkeypatch, mlflow_sqlite)
    scratch = tmp_path / "tmp"  # this process's temporary folder while it registers
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    args = (str(model_dir), str(prepared["schema"]), str(evaluation), str(prepared["test"]), "churn-retry")
    first = register_step(*args)
    assert list(scratch.iterdir()) == []  # the staged schema and evaluation are removed once logged
    retried = register_step(*args)  # a KFP retry or RetryPipelineExecution runs the step again
    assert retried.version == first.version == "1"
    client = MlflowClient(tracking_uri=mlflow_sqlite)
    versions = client.search_model_versions("name = 'churn-retry'")
    assert [str(v.version) for v in versions] == ["1"]
    tags = versions[0].tags
    assert tags[t.TAG_PIPELINE_RUN_ID] == run.run_id
    assert float(tags["accuracy"]) > 0.8 and float(tags["roc_auc"]) > 0.8
    assert tags["kubesage.feature_schema"] == "feature_schema.json"
    # The model artifact's digest, for deploy and the serving container to check (issue 18 item 1).
    assert tags["kubesage.model_sha256"] == hashlib.sha256((model_dir / "xgboost-model.ubj").read_bytes()).hexdigest()
    assert "ROC AUC" in versions[0].description

    other = _in_pipeline_run(monkeypatch, mlflow_sqlite)  # a new pipeline run registers a new version
    assert register_step(*args).version == "2"
    assert client.get_model_version("churn-retry", "2").tags[t.TAG_PIPELINE_RUN_ID] == other.run_id
