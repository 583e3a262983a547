"""Conformance: one pipeline, the same tasks, values and MLflow run tree on every runner.

The promise is "write once, run on any runner with the same result". The compliance suite
(tests/compliance/) proves it for the churn pipeline; this suite proves it for the KFP features the
SageMaker compiler translates (conditions on every output kind, Elif/Else, nested conditions,
sub-pipelines, unrolled loops with Collected, `.after()`, artifacts, list/dict parameters), on small
pipelines whose expected results are computed here, by hand, so a runner that agrees with another
runner on a wrong answer still fails.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tests.conformance.conftest import CompletedRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _children(completed: CompletedRun) -> dict[str, object]:
    client = MlflowClient(tracking_uri=completed.tracking_uri)
    parent = client.get_run(completed.result.mlflow_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    names = [run.data.tags["kubesage.step"] for run in runs]
    assert len(names) == len(set(names)), f"a task ran twice: {sorted(names)}"
    return {run.data.tags["kubesage.step"]: run for run in runs}


def test_runs_exactly_the_tasks_its_conditions_select(completed: CompletedRun) -> None:
    """Why: a branch a runner skips (or runs) on its own is a different pipeline; kfp.local 2.17
    silently skipped dsl.If branches on NamedTuple fields and reported success (issue 26)."""
    assert completed.result.succeeded, completed.result.failure
    assert set(_children(completed)) == completed.scenario.steps


def test_final_values_are_the_ones_computed_by_hand(completed: CompletedRun) -> None:
    """Why: the same inputs through the same components must give the same outputs on every backend,
    including values carried as JSON (list/dict parameters, Collected) and across artifacts."""
    assert completed.result.succeeded, completed.result.failure
    assert completed.result.metrics == pytest.approx(completed.scenario.metrics, rel=1e-12)


def test_mlflow_run_tree_is_one_parent_with_a_finished_child_per_task(completed: CompletedRun) -> None:
    """Why: runs from any runner compare side by side in MLflow only if the tree has the same shape."""
    client = MlflowClient(tracking_uri=completed.tracking_uri)
    parent = client.get_run(completed.result.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["kubesage.runner"] == completed.runner
    assert parent.data.tags["kubesage.kind"] == "pipeline"
    for step, run in _children(completed).items():
        assert run.info.status == "FINISHED", step  # type: ignore[attr-defined]
        assert run.data.tags["kubesage.runner"] == completed.runner, step  # type: ignore[attr-defined]
        assert run.data.tags["kubesage.pipeline_run_id"] == parent.info.run_id, step  # type: ignore[attr-defined]
    assert sorted(s.name for s in completed.result.steps) == sorted(completed.scenario.steps)


def test_the_runner_counts_its_tasks_and_reports_the_branches_its_conditions_skipped(completed: CompletedRun) -> None:
    """Why: the summary states how many tasks ran and which branches were skipped, on every runner
    (the local runner's evaluation, KFP's SKIPPED tasks, SageMaker's ConditionStep outcome), from the
    backend's own view: a user's pipeline may track nothing in MLflow."""
    assert completed.result.succeeded, completed.result.failure
    assert completed.result.tasks_run == len(completed.scenario.steps)
    skipped = completed.result.skipped_branches
    expected = completed.scenario.skipped
    if isinstance(expected, int):
        assert len(skipped) == expected, skipped
    else:
        assert set(skipped) == expected
