"""SageMaker steps as progress: a ConditionStep is not a task; when false, its branch was skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubesage.runners.base import StepEvent
from kubesage.runners.sagemaker.client import condition_outcome, step_event
from kubesage.runners.status import StepStatus


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("True", True), ("False", False), (True, True), (False, False)],  # SageMaker's strings, local mode's bools
)
def test_condition_outcome_from_either_sagemaker_or_local_mode(outcome: Any, expected: bool) -> None:
    assert condition_outcome({"StepName": "condition-1", "Metadata": {"Condition": {"Outcome": outcome}}}) is expected


def test_a_false_condition_step_is_a_skipped_branch_and_a_true_one_no_task() -> None:
    false = {"StepName": "condition-1", "StepStatus": "Succeeded", "Metadata": {"Condition": {"Outcome": "False"}}}
    true = {"StepName": "condition-2", "StepStatus": "Succeeded", "Metadata": {"Condition": {"Outcome": "True"}}}
    assert step_event(false) == StepEvent("condition-1", StepStatus.SKIPPED, message="condition is false")
    assert step_event(true) is None


def test_job_steps_report_their_status_and_failure() -> None:
    step = {"StepName": "train", "StepStatus": "Failed", "FailureReason": "boom", "Metadata": {"TrainingJob": {}}}
    assert step_event(step) == StepEvent("train", StepStatus.FAILED, message="boom")
    assert condition_outcome(step) is None


@pytest.mark.parametrize(
    ("sagemaker", "ours"),
    [
        ("Starting", StepStatus.STARTED),
        ("Executing", StepStatus.STARTED),  # was "executing": one word for "running" on every runner
        ("Succeeded", StepStatus.SUCCEEDED),
        ("Stopping", StepStatus.STOPPING),
        ("Stopped", StepStatus.STOPPED),
    ],
)
def test_sagemaker_step_statuses_are_mapped_to_the_shared_vocabulary(sagemaker: str, ours: StepStatus) -> None:
    event = step_event({"StepName": "train", "StepStatus": sagemaker, "Metadata": {"TrainingJob": {}}})
    assert event is not None and event.status is ours


def test_an_ended_step_reports_its_time_from_sagemakers_own_clock() -> None:
    step = {
        "StepName": "train",
        "StepStatus": "Succeeded",
        "StartTime": datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
        "EndTime": datetime(2026, 1, 1, 12, 1, 30, 500000, tzinfo=UTC),
        "Metadata": {"TrainingJob": {}},
    }
    assert step_event(step) == StepEvent("train", StepStatus.SUCCEEDED, 90.5)
    running = {"StepName": "train", "StepStatus": "Executing", "StartTime": step["StartTime"], "Metadata": {}}
    assert step_event(running) == StepEvent("train", StepStatus.STARTED)


def test_an_unknown_sagemaker_status_is_not_reported() -> None:
    assert step_event({"StepName": "train", "StepStatus": "Pondering", "Metadata": {}}) is None
