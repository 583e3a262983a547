"""What kubesage writes for the MLflow UI: the experiment kind and the shared runs-table layout."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from kubesage.errors import TrackingError
from kubesage.serving.model_source import resolve_model_dir
from kubesage.tracking import ensure_experiment, finish_pipeline_run, start_pipeline_run
from kubesage.tracking.contract import EXPERIMENT_KIND_TRAINING, TAG_EXPERIMENT_KIND
from kubesage.tracking.ui_view import VIEW_TAG, runs_url, view_state


def test_layout_puts_runner_metrics_and_differing_params_in_columns() -> None:
    # Only the key metrics a run has: MLflow draws only the columns in view and puts tags last, so a
    # wide table would push the runner column out of the page (seen in a real browser).
    state = view_state(["f1", "roc_auc", "rows_train"], ["max_depth"])
    assert state["selectedColumns"] == [
        "tags.`kubesage.runner`",
        "metrics.`roc_auc`",
        "metrics.`f1`",
        "params.`max_depth`",
    ]


def test_url_opens_the_training_side_and_the_shared_layout() -> None:
    url = runs_url("http://127.0.0.1:5000/", "7")
    assert url == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=kubesage"


def test_experiments_are_marked_as_training_and_get_the_layout(mlflow_sqlite: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_sqlite)
    older = client.create_experiment("made-before")  # as an older kubesage left it: no kind tag
    assert ensure_experiment("made-before", mlflow_sqlite) == older
    assert client.get_experiment(older).tags[TAG_EXPERIMENT_KIND] == EXPERIMENT_KIND_TRAINING
    for depth in (3, 6):
        run = start_pipeline_run("customer-churn", "local", {"max_depth": depth, "seed": 42})
        client.log_metric(run.run_id, "roc_auc", 0.9)
        finish_pipeline_run(run, "FINISHED")
    experiment = client.get_experiment(run.experiment_id)
    assert experiment.tags[TAG_EXPERIMENT_KIND] == EXPERIMENT_KIND_TRAINING
    columns = json.loads(experiment.tags[VIEW_TAG])["selectedColumns"]
    assert "params.`max_depth`" in columns and "params.`seed`" not in columns
    assert "metrics.`roc_auc`" in columns and "tags.`kubesage.runner`" in columns


def test_a_missing_model_version_lists_the_versions_that_exist(mlflow_sqlite: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_sqlite)
    client.create_registered_model("churn-x")
    for _ in range(2):
        client.create_model_version("churn-x", source="file:///nowhere")
    with pytest.raises(TrackingError, match=r"churn-x has version\(s\) 1, 2: e.g. --model models:/churn-x/2"):
        resolve_model_dir("models:/churn-x/99")
    with pytest.raises(TrackingError, match="no registered model 'nope' has any version"):
        resolve_model_dir("models:/nope/1")


def test_a_run_that_loses_the_race_to_create_the_layout_tag_updates_it(mlflow_sqlite: str) -> None:
    """Two runs ending at once on a new SQLite store: MLflow checks for the tag, then inserts it, so
    the second insert fails on the unique key (seen in tests/faults' concurrent-runs test). The loser
    writes again, as an update, instead of failing its run."""
    from mlflow.exceptions import MlflowException

    from kubesage.tracking.ui_view import update_runs_view

    client = MlflowClient(tracking_uri=mlflow_sqlite)
    experiment = client.create_experiment("raced")
    set_tag = client.set_experiment_tag
    calls: list[str] = []

    def lose_the_first_insert(experiment_id: str, key: str, value: str) -> None:
        calls.append(value)
        if len(calls) == 1:
            set_tag(experiment_id, key, '{"written": "by the other run"}')  # the winner's insert
            raise MlflowException("UNIQUE constraint failed: experiment_tags.key, experiment_tags.experiment_id")
        set_tag(experiment_id, key, value)

    client.set_experiment_tag = lose_the_first_insert  # type: ignore[method-assign]
    update_runs_view(client, experiment)
    assert len(calls) == 2
    assert json.loads(MlflowClient(tracking_uri=mlflow_sqlite).get_experiment(experiment).tags[VIEW_TAG]) == (
        json.loads(calls[1])
    )
    assert "selectedColumns" in json.loads(calls[1])


def test_an_experiment_another_run_created_meanwhile_is_used_not_refused(
    mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs starting at once: both read no experiment, the other creates it first, and MLflow
    refuses this one's create (the name is taken). The lost race is played here by hiding the
    experiment from the first read only."""
    from kubesage.tracking import runs

    client = MlflowClient(tracking_uri=mlflow_sqlite)
    theirs = client.create_experiment("raced", tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND_TRAINING})
    real_client = runs._client(mlflow_sqlite)
    reads = []

    class FirstReadMisses:
        def __getattr__(self, name: str) -> object:
            return getattr(real_client, name)

        def get_experiment_by_name(self, name: str) -> object:
            reads.append(name)
            return None if len(reads) == 1 else real_client.get_experiment_by_name(name)

    monkeypatch.setattr(runs, "_client", lambda uri: FirstReadMisses())
    assert ensure_experiment("raced", mlflow_sqlite) == theirs
    assert reads == ["raced", "raced"]
    assert [e.name for e in client.search_experiments(filter_string="name = 'raced'")] == ["raced"]


def test_a_refusal_that_is_not_a_lost_race_still_fails(mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    from kubesage.tracking import runs

    class Refuses:
        def get_experiment_by_name(self, name: str) -> None:
            return None

        def create_experiment(self, name: str, tags: object) -> str:
            raise MlflowException("INVALID_PARAMETER_VALUE: no")

    monkeypatch.setattr(runs, "_client", lambda uri: Refuses())
    with pytest.raises(TrackingError, match="find or create experiment 'nowhere'"):
        ensure_experiment("nowhere", mlflow_sqlite)
