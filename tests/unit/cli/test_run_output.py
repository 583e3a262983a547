"""`kubesage run`'s console output: task events from KFP's own log calls, quiet unless --verbose,
a short summary and next steps that name commands which exist."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from kfp.local import logging_utils, status
from rich.console import Console

from kubesage.cli import main
from kubesage.cli.run_output import ConsoleProgress, next_steps, print_result
from kubesage.runners.base import RunResult, StepEvent, StepSummary
from kubesage.runners.local.task_logs import capture_task_output
from kubesage.runners.status import StepStatus
from tests.recording import RecordingProgress


def _kfp_task(name: str, outcome: status.Status, output: list[str]) -> None:
    """What KFP's task dispatcher does around one task, with KFP's own formatting helpers."""
    with logging_utils.local_logger_context():
        task = logging_utils.format_task_name(name)
        logging.info(f"Executing task {task}")
        with logging_utils.indented_print():
            for line in output:
                print(line)
        logging.info(f"Task {task} finished with status {logging_utils.format_status(outcome)}")


def test_kfp_task_messages_become_step_events_and_output_goes_to_the_log_file(tmp_path: Path) -> None:
    progress = RecordingProgress()
    log_path = tmp_path / "logs" / "run.log"
    with capture_task_output(log_path, progress) as events:
        _kfp_task("preprocess", status.Status.SUCCESS, ['{"inputs": {"parameterValues": {}}}'])
        _kfp_task("train", status.Status.FAILURE, ["loading data", "kubesage: step train failed: boom"])
    assert [(e.name, e.status) for e in progress.events] == [
        ("preprocess", "started"),
        ("preprocess", "succeeded"),
        ("train", "started"),
        ("train", "failed"),
    ]
    assert all(e.seconds is not None and e.seconds >= 0 for e in progress.events if e.status != "started")
    assert events.failed == ["train"]
    assert events.tail("train")[-2:] == ["loading data", "kubesage: step train failed: boom"]
    text = log_path.read_text()
    assert '"parameterValues"' in text and "Executing task" in text
    assert "\x1b[" not in "\n".join(progress.lines)  # colour codes stripped for the console
    assert any("parameterValues" in line for line in progress.lines)


def test_task_output_reaches_the_console_only_when_verbose() -> None:
    quiet = Console(record=True, width=100)
    ConsoleProgress(quiet).log('{"executor_input": 1}')
    loud = Console(record=True, width=100)
    ConsoleProgress(loud, verbose=True).log('{"executor_input": 1}')
    assert quiet.export_text() == ""
    assert "executor_input" in loud.export_text()


def test_step_lines_show_status_and_seconds() -> None:
    console = Console(record=True, width=100)
    progress = ConsoleProgress(console)
    progress.step(StepEvent("train", StepStatus.STARTED))
    progress.step(StepEvent("train", StepStatus.SUCCEEDED, 12.34))
    lines = console.export_text().splitlines()
    assert len(lines) == 2
    assert "train" in lines[0] and "started" in lines[0]
    assert "succeeded" in lines[1] and "12.3 s" in lines[1]


def _result(**changes: object) -> RunResult:
    values: dict[str, object] = {
        "status": "succeeded",
        "runner": "local",
        "pipeline": "customer-churn",
        "mlflow_run_id": "r1",
        "backend_id": "b",
        "metrics": {"roc_auc": 0.95312, "accuracy": 0.9, "f1": 0.81, "rows_train": 3500.0},
        "registered_model_name": "customer-churn",
        "registered_model_version": "3",
        "not_registered_reason": None,
        "failure": None,
        "wall_seconds": 61.0,
        "steps": [StepSummary("train", StepStatus.SUCCEEDED, 3.0)],
        "tracking_uri": "sqlite:///x/mlflow.db",
    }
    values.update(changes)
    return RunResult(**values)  # type: ignore[arg-type]


def test_summary_is_short_and_ends_with_next_steps_for_the_registered_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = Path("churn.csv")
    data.write_text("x\n")
    console = Console(record=True, width=100)
    print_result(_result(), {"input_data": str(data)}, console)
    text = console.export_text()
    assert len(text.splitlines()) <= 12
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "0.9531" in text and "rows_train" not in text  # key metrics only
    assert "kubesage serve --model models:/customer-churn/3" in text
    assert f"kubesage features records {data}" in text
    assert "curl -s localhost:8080/invocations" in text


def test_next_steps_name_commands_the_cli_has() -> None:
    commands = {
        cmd for _, line in next_steps(_result(), {}) for cmd in [line.split()[1]] if line.startswith("kubesage")
    }
    assert commands == {"ui", "serve", "features"}
    for command in commands:
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0
    assert CliRunner().invoke(main, ["features", "records", "--help"]).exit_code == 0


def test_a_failed_run_shows_its_reason_once_and_no_next_steps() -> None:
    console = Console(record=True, width=100)
    print_result(
        _result(status="failed", failure="step train: DataError: boom", registered_model_version=None), {}, console
    )
    text = console.export_text()
    assert text.count("boom") == 1
    assert "next steps" not in text


def test_summary_of_a_pipeline_without_a_register_step_states_tasks_and_skipped_branches() -> None:
    """Issue 26: a user's pipeline has no register step; the summary said `not registered: ` with
    nothing after it, and nothing about the branch its condition skipped."""
    console = Console(record=True, width=120)
    result = _result(
        pipeline="sensor-alerts",
        metrics={},
        registered_model_name=None,
        registered_model_version=None,
        tasks_run=2,
        skipped_branches={"condition-1": "summarize-mean > threshold is false (summarize-mean=1.5, threshold=2.5)"},
    )
    print_result(result, {}, console)
    text = console.export_text()
    assert "not registered" not in text
    assert "succeeded sensor-alerts on local in 61 s: 2 tasks ran, 1 branch skipped" in text
    assert "skipped condition-1: summarize-mean > threshold is false (summarize-mean=1.5, threshold=2.5)" in text


def test_summary_counts_one_task_and_branches_in_plural() -> None:
    console = Console(record=True, width=120)
    print_result(_result(tasks_run=1, skipped_branches={"a": "", "b": ""}), {}, console)
    assert ": 1 task ran, 2 branches skipped" in console.export_text()


def test_a_gate_that_refused_still_says_why_nothing_was_registered() -> None:
    console = Console(record=True, width=120)
    reason = "accuracy 0.71 < min_accuracy 0.8"
    print_result(_result(registered_model_version=None, not_registered_reason=reason, tasks_run=3), {}, console)
    assert f"not registered: {reason}" in console.export_text()


def test_a_run_that_made_a_model_package_says_how_to_approve_and_deploy_it() -> None:
    """sagemaker-local makes the package after local mode (issue 22 item 8): the next steps are the commands
    that take it on, and they exist."""
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/customer-churn-models/1"
    result = _result(runner="sagemaker-local", model_package_arn=arn)
    console = Console(record=True, width=200)
    print_result(result, {}, console)
    text = console.export_text()
    assert f"model package {arn}" in text
    steps = dict(next_steps(result, {}))
    assert steps["approve it"] == f"kubesage approve {arn}"
    assert steps["deploy it"].startswith(f"kubesage deploy --model-package {arn} --model models:/customer-churn/3 ")
    for command in ("approve", "deploy"):
        assert CliRunner().invoke(main, [command, "--help"]).exit_code == 0
    assert "approve it" not in dict(next_steps(_result(), {}))
