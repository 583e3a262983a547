"""Runner.run's shared work, on a backend defined here whose `_run` does what each test needs.

The backend is a real Runner subclass (not a mock): the shared `run` opens and closes real MLflow
runs in a temporary SQLite store, and the assertions read them back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from kubesage.errors import DataError, ParameterError, RunInterruptedError, RunnerError
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import CallbackProgress, RunContext, Runner, RunnerOptions, StepEvent
from kubesage.runners.registry import load_pipeline
from kubesage.runners.status import StepStatus
from kubesage.tracking import step_run


class ToyOptions(RunnerOptions):
    retries: int = 0


class ToyRunner(Runner):
    name = "toy"
    Options = ToyOptions

    def __init__(self, body: Callable[[RunContext], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.body = body
        self.calls = 0

    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        return output

    def _run(self, context: RunContext) -> None:
        self.calls += 1
        self.body(context)


@pytest.fixture(autouse=True)
def input_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`x.csv` in the working directory (the test's temporary one, where the mlflow_sqlite fixtures
    also run it; requesting none here leaves the store unopened): inputs are checked before a run."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "x.csv"
    path.write_text("State,Churn?\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineSource:
    return load_pipeline("customer_churn", tmp_path_factory.mktemp("ir"))


def _parent(uri: str, run_id: str):  # type: ignore[no-untyped-def]
    return MlflowClient(tracking_uri=uri).get_run(run_id)


def _steps_succeed(context: RunContext) -> None:
    context.record_backend_run("toy-1")
    with environment_of(context), step_run("preprocess") as tracker:
        tracker.log_metrics({"accuracy": 0.9}, also_parent=True)


def environment_of(context: RunContext):  # type: ignore[no-untyped-def]
    from kubesage.util.environment import environment

    return environment(context.tracking.step_env)


def test_a_successful_run_is_recorded_and_summarised(mlflow_sqlite: str, pipeline: PipelineSource) -> None:
    lines: list[str] = []
    result = ToyRunner(_steps_succeed).run(pipeline, {"input_data": "x.csv", "max_depth": "4"}, lines.append)
    assert result.succeeded and result.status == "succeeded"
    assert result.backend_id == "toy-1" and result.runner == "toy"
    assert [(s.name, s.status) for s in result.steps] == [("preprocess", "succeeded")]
    assert result.metrics == {"accuracy": 0.9}
    parent = _parent(mlflow_sqlite, result.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["max_depth"] == "4" and parent.data.params["seed"] == "42"  # defaults logged too
    assert parent.data.tags["kubesage.backend_run_id"] == "toy-1"


def test_parameters_are_checked_before_the_backend_or_mlflow_is_touched(
    mlflow_sqlite_unopened: str, pipeline: PipelineSource
) -> None:
    runner = ToyRunner(_steps_succeed)
    with pytest.raises(ParameterError, match="did you mean 'max_depth'"):
        runner.run(pipeline, {"input_data": "x.csv", "max_dept": 3})
    assert runner.calls == 0
    assert not Path(mlflow_sqlite_unopened.removeprefix("sqlite:///")).exists()


def test_a_step_failure_closes_the_parent_as_failed_with_the_reason(
    mlflow_sqlite: str, pipeline: PipelineSource
) -> None:
    def fail(context: RunContext) -> None:
        with environment_of(context), pytest.raises(DataError), step_run("preprocess"):
            raise DataError("column 'Day Mins' is missing")
        raise RunnerError("pipeline failed: step preprocess: column 'Day Mins' is missing")

    result = ToyRunner(fail).run(pipeline, {"input_data": "x.csv"})
    assert result.status == "failed"
    assert result.failed_steps == {"preprocess": "column 'Day Mins' is missing"}
    assert result.not_registered_reason == f"run failed: {result.failure}"
    parent = _parent(mlflow_sqlite, result.mlflow_run_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["kubesage.failure"] == "pipeline failed: step preprocess: column 'Day Mins' is missing"


def test_an_interrupted_run_is_closed_as_killed(mlflow_sqlite: str, pipeline: PipelineSource) -> None:
    def interrupted(context: RunContext) -> None:
        context.record_backend_run("exec-9")
        raise RunInterruptedError("interrupted (Ctrl-C); execution exec-9 was asked to stop")

    result = ToyRunner(interrupted).run(pipeline, {"input_data": "x.csv"})
    assert result.status == "interrupted" and not result.succeeded
    assert _parent(mlflow_sqlite, result.mlflow_run_id).info.status == "KILLED"


def test_ctrl_c_inside_a_backend_still_closes_the_parent_run(mlflow_sqlite: str, pipeline: PipelineSource) -> None:
    seen: dict[str, str] = {}

    def ctrl_c(context: RunContext) -> None:
        seen["run_id"] = context.tracking.run_id
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ToyRunner(ctrl_c).run(pipeline, {"input_data": "x.csv"})
    assert _parent(mlflow_sqlite, seen["run_id"]).info.status == "KILLED"


def test_a_backend_bug_is_reported_and_the_parent_run_closed(mlflow_sqlite: str, pipeline: PipelineSource) -> None:
    seen: dict[str, str] = {}

    def bug(context: RunContext) -> None:
        seen["run_id"] = context.tracking.run_id
        raise KeyError("oops")

    with pytest.raises(RunnerError, match="the toy runner failed unexpectedly: KeyError: 'oops'"):
        ToyRunner(bug).run(pipeline, {"input_data": "x.csv"})
    assert _parent(mlflow_sqlite, seen["run_id"]).info.status == "FAILED"


def test_options_are_validated_at_the_boundary() -> None:
    assert ToyRunner(_steps_succeed, retries=None).options.retries == 0  # None means unset
    assert ToyRunner(_steps_succeed, retries="3").options.retries == 3
    with pytest.raises(ParameterError, match=r"invalid toy runner option: retries: Input should be a valid integer"):
        ToyRunner(_steps_succeed, retries="many")
    with pytest.raises(ParameterError, match=r"invalid toy runner option: colour: Extra inputs are not permitted"):
        ToyRunner(_steps_succeed, colour="red")


def test_callback_progress_formats_step_events() -> None:
    lines: list[str] = []
    progress = CallbackProgress(lines.append)
    progress.info("running")
    progress.step(StepEvent("train", StepStatus.SUCCEEDED, 1.25))
    progress.step(StepEvent("evaluate", StepStatus.FAILED, message="boom"))
    assert lines == ["running", "step train succeeded in 1.2 s", "step evaluate failed: boom"]


def test_the_step_ledger_counts_executions_not_names_and_keeps_every_skipped_branch() -> None:
    """Loop iterations and a sub-pipeline used twice repeat task names; each one ran."""
    from kubesage.runners.base import Progress, StepEvent, StepLedger

    seen: list[StepEvent] = []

    class Keep(Progress):
        def step(self, event: StepEvent) -> None:
            seen.append(event)

    ledger = StepLedger(Keep())
    started, succeeded, failed = StepStatus.STARTED, StepStatus.SUCCEEDED, StepStatus.FAILED
    for status in (started, succeeded, started, succeeded, failed, StepStatus.CACHED, StepStatus.STOPPED):
        ledger.step(StepEvent("square", status))
    ledger.step(StepEvent("condition-3", StepStatus.SKIPPED, message="item > 1 is false (item=1)"))
    ledger.step(StepEvent("condition-3", StepStatus.SKIPPED, message="item > 1 is false (item=0)"))
    assert ledger.tasks_run == 4  # succeeded twice, failed, stopped; not started, cached or skipped
    assert ledger.skipped == {
        "condition-3": "item > 1 is false (item=1)",
        "condition-3 (2)": "item > 1 is false (item=0)",
    }
    assert len(seen) == 9  # every event passed on
