"""MLflow tracking helpers against a temporary SQLite store."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from kubesage import tracking as t
from kubesage.tracking import runs


def test_step_without_tracking_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(t.ENV_PARENT_RUN_ID, raising=False)
    with t.step_run("alone") as tracker:
        assert not tracker.enabled
        tracker.log_metrics({"x": 1.0})  # must not raise or create anything


def test_steps_nest_under_the_pipeline_run(mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = t.start_pipeline_run("demo-pipeline", "local", {"alpha": 0.5, "n": 3}, tags={"extra": "yes"})
    for key, value in run.step_env.items():
        monkeypatch.setenv(key, value)
    with t.step_run("train") as tracker:
        tracker.log_params({"depth": 4})
        tracker.log_metrics({"auc": 0.97}, also_parent=True)
        tracker.set_tags({"kubesage.data_uri": "s3://b/k"}, also_parent=True)
    with pytest.raises(RuntimeError), t.step_run("evaluate"):
        raise RuntimeError("boom")
    t.finish_pipeline_run(run, "FAILED", failure="step evaluate: boom")

    client = MlflowClient(tracking_uri=mlflow_sqlite)
    parent = client.get_run(run.run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.params == {"alpha": "0.5", "n": "3"}
    assert parent.data.metrics["auc"] == 0.97
    assert parent.data.tags["kubesage.runner"] == "local"
    assert parent.data.tags["kubesage.failure"] == "step evaluate: boom"
    assert parent.data.tags["extra"] == "yes"
    children = client.search_runs([run.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.run_id}'")
    by_step = {c.data.tags["kubesage.step"]: c for c in children}
    assert by_step["train"].info.status == "FINISHED"
    assert by_step["train"].data.params == {"depth": "4"}
    assert by_step["evaluate"].info.status == "FAILED"
    assert by_step["evaluate"].data.tags["kubesage.failure"] == "boom"
    assert client.get_experiment(run.experiment_id).name == "demo-pipeline"


class _CountingClient(MlflowClient):
    """The real client, counting the writes that reach its store: one per call to MLflow."""

    def __init__(self, uri: str) -> None:
        super().__init__(tracking_uri=uri)
        self.writes: list[str] = []

    def log_batch(self, run_id: str, *args: Any, **kwargs: Any) -> Any:
        self.writes.append("log_batch")
        return super().log_batch(run_id, *args, **kwargs)

    def log_param(self, *args: Any, **kwargs: Any) -> Any:
        self.writes.append("log_param")
        return super().log_param(*args, **kwargs)

    def log_metric(self, *args: Any, **kwargs: Any) -> Any:
        self.writes.append("log_metric")
        return super().log_metric(*args, **kwargs)

    def set_tag(self, *args: Any, **kwargs: Any) -> Any:
        self.writes.append("set_tag")
        return super().set_tag(*args, **kwargs)


def test_a_steps_values_are_logged_in_one_batch_per_call(mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call per value was a request per value to a tracking server (60 of a churn run's 127): each
    tracker call is one batch now, MLflow's client splitting it at the store's limit of 100 parameters."""
    client = _CountingClient(mlflow_sqlite)
    monkeypatch.setattr(runs, "_client", lambda uri: client)
    params = {f"p{i:03d}": i for i in range(150)}
    run = t.start_pipeline_run("demo-pipeline", "local", params)
    assert client.writes == ["log_batch"]  # the parameters and the pipeline run id's tag
    for key, value in run.step_env.items():
        monkeypatch.setenv(key, value)
    client.writes.clear()
    with t.step_run("train") as tracker:
        tracker.log_params({"depth": 4, "eta": 0.3, "long": "x" * 7000})
        tracker.log_metrics({"auc": 0.97, "accuracy": 0.9, "loss": 0.25}, also_parent=True)
        tracker.set_tags({"a": "1", "b": "2"})
    assert client.writes == ["log_batch"] * 4  # parameters; metrics on the step and on the parent; tags
    reader = MlflowClient(tracking_uri=mlflow_sqlite)
    assert reader.get_run(run.run_id).data.params == {key: str(value) for key, value in params.items()}
    assert reader.get_run(run.run_id).data.tags[t.TAG_PIPELINE_RUN_ID] == run.run_id
    assert reader.get_run(run.run_id).data.metrics == {"auc": 0.97, "accuracy": 0.9, "loss": 0.25}
    step = reader.get_run(str(tracker.run_id)).data
    assert step.params["depth"] == "4" and step.params["eta"] == "0.3"
    assert len(step.params["long"]) == 6000 and step.params["long"].endswith("...")  # cut to MLflow's limit
    assert step.metrics == {"auc": 0.97, "accuracy": 0.9, "loss": 0.25}
    assert (step.tags["a"], step.tags["b"]) == ("1", "2")


def test_a_step_in_the_image_records_its_build(mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The image sets KUBESAGE_IMAGE_REVISION (its Dockerfile): the step run says which build ran it;
    a step outside the image records no such tag."""
    run = t.start_pipeline_run("demo-pipeline", "kfp", {})
    for key, value in run.step_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(t.ENV_IMAGE_REVISION, raising=False)
    with t.step_run("outside") as outside:
        pass
    monkeypatch.setenv(t.ENV_IMAGE_REVISION, "0123abc-dirty")
    with t.step_run("inside") as inside:
        pass
    client = MlflowClient(tracking_uri=mlflow_sqlite)
    assert t.TAG_IMAGE_REVISION not in client.get_run(str(outside.run_id)).data.tags
    assert client.get_run(str(inside.run_id)).data.tags[t.TAG_IMAGE_REVISION] == "0123abc-dirty"


def test_step_runs_are_read_once_for_every_caller(mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The result summary and the kfp runner's failure reason read the same step runs, oldest first."""
    run = t.start_pipeline_run("demo-pipeline", "local", {})
    for key, value in run.step_env.items():
        monkeypatch.setenv(key, value)
    with t.step_run("preprocess"):
        pass
    with pytest.raises(ValueError), t.step_run("train"):
        raise ValueError("column 'Day Mins' is missing")
    steps = t.step_runs(run)
    assert [t.step_name(s) for s in steps] == ["preprocess", "train"]
    assert [s.info.status for s in steps] == ["FINISHED", "FAILED"]
    assert t.failed_step_reasons(steps) == {"train": "column 'Day Mins' is missing"}


def test_mlflow_client_defaults_to_the_tracking_uri_in_force(mlflow_sqlite: str) -> None:
    assert t.mlflow_client().tracking_uri == mlflow_sqlite == t.tracking_uri()


@pytest.mark.parametrize(
    ("uri", "server"),
    [
        ("http://127.0.0.1:5000", True),
        ("HTTPS://mlflow.example.com", True),
        ("databricks", True),
        ("databricks://profile", True),
        ("arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/kubesage", True),
        ("sqlite:///tmp/mlflow.db", False),
        ("file:///tmp/mlruns", False),
        ("/tmp/mlruns", False),
        ("mlruns", False),
        ("postgresql://mlflow@127.0.0.1/mlflow", False),  # a database only this machine's network may reach
        ("databricks-uc", False),  # a model registry URI, not a tracking server
    ],
)
def test_server_uris_are_told_from_local_stores_by_their_scheme(uri: str, server: bool) -> None:
    assert t.is_server_uri(uri) is server


def test_default_store_is_sqlite_in_the_working_directory(tmp_path: object) -> None:
    assert t.default_tracking_uri().startswith("sqlite:///") and t.default_tracking_uri().endswith("/mlflow.db")


def test_sagemaker_managed_mlflow_arns_resolve_to_the_plugin_store() -> None:
    """ARN tracking URIs go through the sagemaker-mlflow plugin (SigV4); no call is made to build the store."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    arn = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/churn"
    builder = _tracking_store_registry.get_store_builder(arn)
    assert builder.__module__.startswith("sagemaker_mlflow")


def test_sagemaker_plugin_header_noise_is_dropped_only_for_non_arn_uris(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    record = logging.LogRecord("x", logging.WARNING, "f", 1, "Encountered unexpected error during resolving request "
                               "headers: list index out of range", None, None)  # fmt: skip
    noise_filter = runs._SageMakerHeaderNoise()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert not noise_filter.filter(record)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/x")
    assert noise_filter.filter(record)
    other = logging.LogRecord("x", logging.WARNING, "f", 1, "something else", None, None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert noise_filter.filter(other)
