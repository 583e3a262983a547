"""The compliance suite: every runner that can run here behaves the same on the same pipeline.

Each test says why the behaviour must match across backends. A new runner joins by adding its case
to `CASE_BUILDERS` in conftest.py; it must then pass every test here unchanged.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from kubesage.churn.modelio import find_model_file
from kubesage.errors import ParameterError
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import RunResult
from kubesage.tracking.contract import EXPERIMENT_KIND_TRAINING, TAG_EXPERIMENT_KIND
from tests.compliance.conftest import CompletedRun, RunnerCase

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = ["preprocess", "train", "evaluate", "register"]


@pytest.fixture(scope="session")
def reference_metrics(prepared: dict[str, Path], trained_model: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The pipeline's metrics computed in-process by the components' own functions, with the
    pipeline's defaults: what every runner must reproduce exactly (same data, seed, code)."""
    from kubesage.components.evaluate import evaluate_model

    return evaluate_model(prepared["test"], trained_model, 0.5).metrics


def test_run_succeeds_with_the_metrics_the_components_compute(churn_run: CompletedRun, reference_metrics) -> None:  # type: ignore[no-untyped-def]
    """Why: a runner is only a way to execute the same code; any metric drift means it changed the
    data, the parameters or the code a step ran."""
    result = churn_run.result
    assert result.succeeded, result.failure
    for name, value in reference_metrics.items():
        assert result.metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert result.metrics["accuracy"] > 0.9 and result.metrics["roc_auc"] > 0.95


def test_result_object_is_the_same_shape(churn_run: CompletedRun) -> None:
    """Why: scripts read `--output json`; it must not depend on the backend."""
    result = churn_run.result
    assert set(result.to_dict()) == {f.name for f in fields(RunResult)}
    assert result.runner == churn_run.case.name
    assert result.pipeline == "customer-churn" and result.status == "succeeded"
    assert result.backend_id, "each backend records its own run id"
    assert [s.name for s in result.steps] == STEPS
    assert {s.status for s in result.steps} == {"succeeded"}
    assert all(s.seconds is not None and s.seconds > 0 for s in result.steps)
    assert result.registered_model_name == "customer-churn" and result.registered_model_version
    assert result.not_registered_reason is None and result.failure is None and result.failed_steps == {}
    assert result.tracking_uri == churn_run.tracking_uri and result.wall_seconds > 0


def test_mlflow_run_tree_is_the_same(churn_run: CompletedRun, churn_csv: Path) -> None:
    """Why: runs from any runner must compare side by side in MLflow: one parent run with the
    parameters, tags and metrics, one nested run per step, each tagged with the runner."""
    client = MlflowClient(tracking_uri=churn_run.tracking_uri)
    result = churn_run.result
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["kubesage.runner"] == churn_run.case.name
    assert tags["kubesage.pipeline"] == "customer-churn" and tags["kubesage.kind"] == "pipeline"
    assert tags["kubesage.backend_run_id"] == result.backend_id
    assert tags["kubesage.data_sha256"] and tags["kubesage.data_uri"]
    assert tags["kubesage.registered_model_version"] == result.registered_model_version
    assert parent.data.params["seed"] == "42" and parent.data.params["max_depth"] == "5"
    assert parent.data.metrics["accuracy"] == result.metrics["accuracy"]
    # The UI shows the experiment as model training, and its compare view lists only a run's root files
    # as common artifacts: the plots are there, on the server.
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags[TAG_EXPERIMENT_KIND] == EXPERIMENT_KIND_TRAINING
    assert {"roc_curve.png", "confusion_matrix.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_step = {c.data.tags["kubesage.step"]: c for c in children}
    assert sorted(by_step) == sorted(STEPS)
    for step, run in by_step.items():
        assert run.info.status == "FINISHED", step
        assert run.data.tags["kubesage.runner"] == churn_run.case.name, step
        assert run.data.tags["kubesage.pipeline_run_id"] == parent.info.run_id, step
    assert by_step["preprocess"].data.metrics["rows_train"] == 3500
    assert by_step["train"].data.params["subsample"] == "0.7"
    for name, value in result.metrics.items():
        if name in by_step["evaluate"].data.metrics:
            assert by_step["evaluate"].data.metrics[name] == value, name


def test_registered_version_belongs_to_this_run_and_its_files_left_the_step(
    churn_run: CompletedRun, tmp_path: Path
) -> None:
    """Why: a model registered from a container must point at files the registry can hand out,
    and at the register step of this very run."""
    client = MlflowClient(tracking_uri=churn_run.tracking_uri)
    result = churn_run.result
    version = client.get_model_version("customer-churn", str(result.registered_model_version))
    # The version links to the pipeline's parent run, so the UI shows it beside the run's metrics.
    assert version.run_id == result.mlflow_run_id
    assert version.tags["kubesage.pipeline_run_id"] == result.mlflow_run_id
    # The files went through the server's artifact proxy, not to a folder of the client that ran the step:
    # anyone with access to the server gets them.
    assert client.get_run(result.mlflow_run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    mlflow.set_tracking_uri(churn_run.tracking_uri)
    model_uri = f"models:/customer-churn/{result.registered_model_version}"
    downloaded = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "model")))
    assert find_model_file(downloaded).stat().st_size > 0
    assert (downloaded / "extra_files" / "feature_schema.json").is_file()  # serving checks requests against it


def test_bad_parameters_are_refused_before_anything_is_recorded(
    case: RunnerCase,
    churn_pipeline: PipelineSource,
    churn_csv: Path,
    compliance_mlflow,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Why: a typo must cost nothing on any backend: no run, no upload, no container."""
    client = MlflowClient(tracking_uri=compliance_mlflow.url)
    before = len(client.search_runs(_experiments(client), max_results=1000))
    with pytest.raises(ParameterError, match=r"unknown pipeline parameter 'max_dept' \(did you mean 'max_depth'\?\)"):
        case.run(churn_pipeline, {"input_data": str(churn_csv), "max_dept": 3}, compliance_mlflow.url)
    with pytest.raises(ParameterError, match=r"parameter seed='abc' is not a valid integer"):
        case.run(churn_pipeline, {"input_data": str(churn_csv), "seed": "abc"}, compliance_mlflow.url)
    with pytest.raises(ParameterError, match=r"missing required pipeline parameter\(s\) input_data"):
        case.run(churn_pipeline, {}, compliance_mlflow.url)
    assert len(client.search_runs(_experiments(client), max_results=1000)) == before


def test_a_failing_step_is_reported_the_same_way(failing_run: CompletedRun) -> None:
    """Why: when a step fails, the user must see which step and why, and nothing may be registered,
    whichever backend ran it."""
    result = failing_run.result
    assert result.status == "failed" and not result.succeeded
    assert list(result.failed_steps) == ["preprocess"]
    assert "Day Mins" in result.failed_steps["preprocess"]
    assert result.failure and "failed" in result.failure
    assert result.registered_model_version is None
    assert result.not_registered_reason and result.not_registered_reason.startswith("run failed:")

    client = MlflowClient(tracking_uri=failing_run.tracking_uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["kubesage.failure"] == result.failure
    versions = client.search_model_versions("name = 'customer-churn'")
    assert all(v.run_id != result.mlflow_run_id for v in versions)


def _experiments(client: MlflowClient) -> list[str]:
    return [e.experiment_id for e in client.search_experiments()]
