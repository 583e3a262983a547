"""One status vocabulary: each backend's words mapped once, and the MLflow status a run closes with."""

from __future__ import annotations

import json

import pytest

from kubesage.runners import status
from kubesage.runners.status import RunStatus, StepStatus, statuses_to_report


@pytest.mark.parametrize(
    ("run", "mlflow"),
    [(RunStatus.SUCCEEDED, "FINISHED"), (RunStatus.FAILED, "FAILED"), (RunStatus.INTERRUPTED, "KILLED")],
)
def test_a_run_closes_its_mlflow_parent_with_the_matching_status(run: RunStatus, mlflow: str) -> None:
    assert run.mlflow == mlflow


def test_statuses_print_and_serialise_as_their_plain_words() -> None:
    assert f"{RunStatus.SUCCEEDED}" == "succeeded" and f"{StepStatus.SKIPPED:<8}|" == "skipped |"
    assert json.dumps({"status": RunStatus.INTERRUPTED, "steps": [StepStatus.CACHED]}) == (
        '{"status": "interrupted", "steps": ["cached"]}'
    )


@pytest.mark.parametrize(
    ("mapping", "word", "expected"),
    [
        (status.from_mlflow, "FINISHED", StepStatus.SUCCEEDED),
        (status.from_mlflow, "KILLED", StepStatus.STOPPED),
        (status.from_mlflow, "RUNNING", StepStatus.STARTED),  # a step that never closed its run
        (status.from_kfp, "CANCELED", StepStatus.STOPPED),  # was "canceled": the same as SageMaker's Stopped
        (status.from_kfp, "SKIPPED", StepStatus.SKIPPED),
        (status.from_kfp, "PENDING", None),  # not progress
        (status.from_sagemaker, "Executing", StepStatus.STARTED),
        (status.from_sagemaker, "Stopped", StepStatus.STOPPED),
        (status.from_kfp_local, "FAILURE", StepStatus.FAILED),
    ],
)
def test_backend_words_map_to_one_vocabulary(mapping: object, word: str, expected: StepStatus | None) -> None:
    assert mapping(word) is expected  # type: ignore[operator]


def test_only_steps_whose_code_ran_count_as_ran() -> None:
    assert {s for s in StepStatus if s.ran} == {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.STOPPED}


@pytest.mark.parametrize(
    ("previous", "status", "reported"),
    [
        (None, StepStatus.STARTED, [StepStatus.STARTED]),
        (StepStatus.STARTED, StepStatus.STARTED, []),
        (StepStatus.STARTED, StepStatus.SUCCEEDED, [StepStatus.SUCCEEDED]),
        # Started and ended between two polls (a 0.5 s task, polled every 0.5 s): the start too.
        (None, StepStatus.SUCCEEDED, [StepStatus.STARTED, StepStatus.SUCCEEDED]),
        (None, StepStatus.FAILED, [StepStatus.STARTED, StepStatus.FAILED]),
        (StepStatus.SUCCEEDED, StepStatus.SUCCEEDED, []),
        # Not run, so no start: a branch not taken, a step stopped from outside, maybe before it began.
        (None, StepStatus.SKIPPED, [StepStatus.SKIPPED]),
        (None, StepStatus.STOPPED, [StepStatus.STOPPED]),
    ],
)
def test_a_follower_reports_each_change_once_and_the_start_it_missed(
    previous: StepStatus | None, status: StepStatus, reported: list[StepStatus]
) -> None:
    assert statuses_to_report(previous, status) == reported
