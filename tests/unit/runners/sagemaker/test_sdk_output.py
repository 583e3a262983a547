"""The SageMaker SDK's local-mode output: to the run's log file, step lines live, conditions not shown as tasks.

The records are emitted on the SDK's own step logger with the SDK's own calls
(`_LocalPipelineExecution.mark_step_executing`, `update_step_properties`, `update_step_failure`), so
a change to the SDK's wording fails here rather than silently dropping the step lines.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from kubesage.runners.base import Progress
from kubesage.runners.sagemaker.compiler import offline_env
from kubesage.runners.sagemaker.sdk_output import capture_sdk_output, readable_failure
from kubesage.runners.status import StepStatus
from tests.recording import RecordingProgress


def _execution(steps: list[str]) -> Any:
    """The SDK's own execution record, with its step entries, as its executor drives it."""
    with offline_env("us-east-1"):  # importing sagemaker.mlops creates boto3 clients, which need a region
        from sagemaker.mlops.local.pipeline_entities import _LocalPipelineExecution, _LocalPipelineExecutionStep
        from sagemaker.mlops.workflow.steps import StepTypeEnum

    execution = _LocalPipelineExecution.__new__(_LocalPipelineExecution)
    execution.step_execution = {
        name: _LocalPipelineExecutionStep(name, StepTypeEnum.PROCESSING, None) for name in steps
    }
    return execution


def test_steps_are_reported_live_and_everything_else_goes_to_the_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    progress, log_path = RecordingProgress(), tmp_path / "logs" / "run.log"
    execution = _execution(["preprocess", "condition-2", "condition-3", "train"])
    with capture_sdk_output(log_path, progress, {"condition-2", "condition-3"}) as events:
        events.outcome = lambda step: execution.step_execution[step].properties.get("Outcome")
        # What the SDK does while a job runs: a logged compose file, the container's output on stdout.
        logging.getLogger("sagemaker.core.local.image").info("docker compose file: \nservices: {}")
        logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
        execution.mark_step_executing("preprocess")
        sys.stdout.write("\x1b[32mpreprocessed 5000 rows\x1b[0m\n")
        execution.update_step_properties("preprocess", {"ProcessingJobName": "p"})
        execution.mark_step_executing("condition-2")
        execution.update_step_properties("condition-2", {"Outcome": True})
        execution.mark_step_executing("condition-3")
        execution.update_step_properties("condition-3", {"Outcome": False})
        execution.mark_step_executing("train")
        print("abc-algo-1-xyz  | Traceback (most recent call last):\nDataError: column 'Day Mins' is missing")
        with pytest.raises(Exception, match="Failed to run") as raised:
            execution.update_step_failure(
                "train",
                "RuntimeError: Failed to run: ['docker-compose', '-f', '/tmp/x/docker-compose.yaml', 'up']. "
                "Process exited with code: 1",
            )
    assert type(raised.value).__name__ == "StepExecutionException"  # how the SDK's executor stops the run
    seen = [(e.name, e.status) for e in progress.events]
    assert seen == [
        ("preprocess", StepStatus.STARTED),
        ("preprocess", StepStatus.SUCCEEDED),
        ("condition-3", StepStatus.SKIPPED),  # a gate is no task; a false one skips its branch, as it ends
        ("train", StepStatus.STARTED),
        ("train", StepStatus.FAILED),
    ]
    ended = [e for e in progress.events if e.status in (StepStatus.SUCCEEDED, StepStatus.FAILED)]
    assert all(e.seconds is not None and e.seconds >= 0 for e in ended)
    assert events.skipped == ["condition-3"]
    assert events.failed == {"train": "RuntimeError: the job's container exited with code 1"}
    assert events.tail("train") == ["Traceback (most recent call last):", "DataError: column 'Day Mins' is missing"]
    text = log_path.read_text()
    assert "docker compose file" in text and "Found credentials" in text and "preprocessed 5000 rows" in text
    assert "preprocessed 5000 rows" in progress.lines  # --verbose shows it, without the colour codes
    out, err = capfd.readouterr()
    assert out == "" and err == "", "nothing of the SDK reaches the console"


def test_the_root_logger_is_left_as_it_was(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with capture_sdk_output(tmp_path / "run.log", Progress(), set()):
        assert root.level == logging.INFO and len(root.handlers) == 1
    assert root.handlers == handlers and root.level == level


@pytest.mark.parametrize(
    ("message", "readable"),
    [
        (
            "RuntimeError: Failed to run: ['docker-compose', '-f', '/tmp/a b/c.yaml', 'up', '--build'], "
            "Process exited with code: 137",
            "RuntimeError: the job's container exited with code 137",
        ),
        (  # what sagemaker-core 2.27 says
            "RuntimeError: Failed to run: ['docker-compose', '-f', '/tmp/tmp1/docker-compose.yaml', 'up']. "
            "Process exited with code: 2",
            "RuntimeError: the job's container exited with code 2",
        ),
        ("JsonGet of evaluate is undefined.", "JsonGet of evaluate is undefined."),
    ],
)
def test_failures_name_the_exit_code_not_the_compose_command(message: str, readable: str) -> None:
    assert readable_failure(message) == readable
