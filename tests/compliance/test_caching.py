"""Caching on the local runner, with KFP's semantics, asserted on real runs and a real MLflow store.

A task whose component and inputs (parameter values, input artifact contents) match an earlier
successful run reuses its outputs; a cached step is shown as cached and recorded in MLflow, linked to
the run that produced its outputs; a damaged entry is never trusted; `set_caching_options(False)` and
`enable_caching=false` are honoured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from kubesage.runners.base import RunResult
from kubesage.runners.registry import get_runner, load_pipeline
from kubesage.util.environment import environment
from tests.servers import fresh_sqlite_store

pytestmark = [pytest.mark.integration]

CACHED = "kubesage.cached"
CACHED_FROM = "kubesage.cached_from_run_id"


@dataclass(frozen=True)
class Run:
    result: RunResult
    lines: list[str]
    steps: dict[str, Any]  # step name -> MLflow run

    def cached(self) -> set[str]:
        return {name for name, run in self.steps.items() if run.data.tags.get(CACHED) == "true"}


class LocalRuns:
    """Runs a pipeline on the local runner into one new SQLite store (a copy of the session's migrated
    template: a new file's migrations cost 2-3 s in each test); pipeline roots by name."""

    def __init__(self, workdir: Path, template: Path) -> None:
        self.workdir = workdir
        self.uri = fresh_sqlite_store(template, workdir / "mlflow.db")

    def run(self, ref: str, params: dict[str, Any], root: str = "root", **options: Any) -> Run:
        source = load_pipeline(ref, self.workdir / "build")
        runner = get_runner("local", {"pipeline_root": str(self.workdir / root), **options})
        lines: list[str] = []
        with environment({"MLFLOW_TRACKING_URI": self.uri}):
            result = runner.run(source, params, lines.append)
        assert result.succeeded, result.failure
        return Run(result, lines, self.steps(result))

    def steps(self, result: RunResult) -> dict[str, Any]:
        client = MlflowClient(tracking_uri=self.uri)
        parent = client.get_run(result.mlflow_run_id)
        children = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        return {c.data.tags["kubesage.step"]: c for c in children}

    def parent(self, result: RunResult) -> Any:
        return MlflowClient(tracking_uri=self.uri).get_run(result.mlflow_run_id)


# --- the churn pipeline: change only max_depth --------------------------------------------------------
@pytest.fixture(scope="module")
def churn_runs(
    tmp_path_factory: pytest.TempPathFactory, churn_csv: Path, mlflow_sqlite_template: Path
) -> Iterator[tuple[LocalRuns, Run, Run, Run, Run]]:
    runs = LocalRuns(tmp_path_factory.mktemp("churn-cache"), mlflow_sqlite_template)
    data = {"input_data": str(churn_csv), "seed": 42}
    first = runs.run("customer_churn", data)
    rerun = runs.run("customer_churn", {**data, "max_depth": 3})
    uncached = runs.run("customer_churn", {**data, "max_depth": 3}, root="other-root", enable_caching=False)
    again = runs.run("customer_churn", {**data, "max_depth": 3})
    yield runs, first, rerun, uncached, again


def test_changing_max_depth_reruns_train_and_after_but_not_preprocess(
    churn_runs: tuple[LocalRuns, Run, Run, Run, Run],
) -> None:
    _, first, rerun, _, _ = churn_runs
    assert first.cached() == set()
    assert rerun.cached() == {"preprocess"}
    assert set(rerun.steps) == {"preprocess", "train", "evaluate", "register"}
    assert "step preprocess cached in 0.0 s: outputs of run " + first.steps["preprocess"].info.run_id[
        :8
    ] + " reused" in (rerun.lines)
    assert rerun.steps["train"].data.params["max_depth"] == "3"


def test_a_cached_step_is_recorded_like_the_run_it_reuses(churn_runs: tuple[LocalRuns, Run, Run, Run, Run]) -> None:
    runs, first, rerun, _, _ = churn_runs
    producer, cached = first.steps["preprocess"], rerun.steps["preprocess"]
    assert cached.data.tags[CACHED_FROM] == producer.info.run_id
    assert cached.info.status == "FINISHED"
    assert cached.data.metrics == producer.data.metrics
    assert cached.data.metrics["rows_train"] == 3500
    assert cached.data.params == producer.data.params
    files = {a.path for a in MlflowClient(tracking_uri=runs.uri).list_artifacts(cached.info.run_id)}
    assert "feature_schema.json" in files  # the step run's files come along
    # what preprocess also set on its pipeline run (the data's URI and hash) is on the new one too
    first_tags, rerun_tags = runs.parent(first.result).data.tags, runs.parent(rerun.result).data.tags
    assert rerun_tags["kubesage.data_sha256"] == first_tags["kubesage.data_sha256"]
    assert rerun_tags["kubesage.data_uri"] == first_tags["kubesage.data_uri"]


def test_the_cached_rerun_records_the_metrics_of_an_uncached_run(
    churn_runs: tuple[LocalRuns, Run, Run, Run, Run],
) -> None:
    _, first, rerun, uncached, _ = churn_runs
    assert uncached.cached() == set()
    assert rerun.result.metrics == uncached.result.metrics
    assert rerun.result.metrics != first.result.metrics  # max_depth 3 is a different model
    for step in ("train", "evaluate"):
        ours, theirs = (_without_timings(r.steps[step].data.metrics) for r in (rerun, uncached))
        assert ours == theirs, step


def test_a_rerun_with_nothing_changed_reuses_every_step_and_keeps_the_record_whole(
    churn_runs: tuple[LocalRuns, Run, Run, Run, Run],
) -> None:
    runs, _, rerun, _, again = churn_runs
    assert again.cached() == {"preprocess", "train", "evaluate", "register"}
    assert again.result.metrics == rerun.result.metrics
    assert again.result.registered_model_version == rerun.result.registered_model_version
    client = MlflowClient(tracking_uri=runs.uri)
    assert {"roc_curve.png", "confusion_matrix.png"} <= {
        a.path for a in client.list_artifacts(again.result.mlflow_run_id)
    }


def _without_timings(metrics: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in metrics.items() if not name.endswith("_seconds")}


# --- a small pipeline: entries, options ------------------------------------------------------------------
SMALL = "tests.integration.local_pipelines:cache_pipeline"


@pytest.fixture
def small(tmp_path: Path, mlflow_sqlite_template: Path) -> LocalRuns:
    return LocalRuns(tmp_path, mlflow_sqlite_template)


def _entries(runs: LocalRuns) -> list[Path]:
    return sorted((runs.workdir / "root" / ".kubesage_cache").glob("*.json"))


def test_set_caching_options_false_is_honoured_and_outputs_reach_the_pipeline_run(small: LocalRuns) -> None:
    first = small.run(SMALL, {"text": "hello"})
    second = small.run(SMALL, {"text": "hello"})

    assert first.cached() == set()
    assert second.cached() == {"write_text", "count_chars"}  # stamp_uncached has set_caching_options(False)
    assert second.steps["stamp_uncached"].info.status == "FINISHED"
    assert small.parent(second.result).data.metrics["count"] == 5  # logged also_parent by count_chars


def test_a_changed_parameter_or_the_run_wide_option_reruns(small: LocalRuns) -> None:
    small.run(SMALL, {"text": "hello"})
    assert small.run(SMALL, {"text": "hello", "extra": 2}).cached() == {"write_text"}
    assert small.run(SMALL, {"text": "hello"}, enable_caching=False).cached() == set()


def test_an_edit_of_kubesage_between_runs_of_one_process_reruns_the_steps_that_use_it(
    small: LocalRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A notebook editing kubesage's steps: the warm fork server (warm.py) restarts with the new code,
    # and the cache must key on that code too, not on what this process saw at its first run.
    from kubesage.runners.local import warm

    small.run(SMALL, {"text": "hello"})
    assert small.run(SMALL, {"text": "hello"}).cached() == {"write_text", "count_chars"}
    monkeypatch.setattr(warm, "_code_digest", lambda: "kubesage edited")
    assert small.run(SMALL, {"text": "hello"}).cached() == set()
    assert small.run(SMALL, {"text": "hello"}).cached() == {"write_text", "count_chars"}


def test_an_entry_that_does_not_parse_is_ignored_and_replaced(small: LocalRuns) -> None:
    small.run(SMALL, {"text": "hello"})
    entries = _entries(small)
    assert len(entries) == 2
    for entry in entries:
        entry.write_text('{"outputs": {"out": ', encoding="utf-8")

    rerun = small.run(SMALL, {"text": "hello"})
    assert rerun.cached() == set()
    log = (small.workdir / "root" / "logs" / f"{rerun.result.backend_id}.log").read_text(encoding="utf-8")
    assert log.count("kubesage cache: ignoring entry") == 2
    assert "JSONDecodeError" in log
    assert small.run(SMALL, {"text": "hello"}).cached() == {"write_text", "count_chars"}


def _written_file(small: LocalRuns, run: Run) -> Path:
    files = list((small.workdir / "root").glob("cache-check-*/write-text/out"))
    assert len(files) == 1, files
    return files[0]


def test_an_output_that_is_missing_or_changed_is_not_trusted(small: LocalRuns) -> None:
    first = small.run(SMALL, {"text": "hello"})
    written = _written_file(small, first)

    written.write_text("jello", encoding="utf-8")  # same size, other content
    changed = small.run(SMALL, {"text": "hello"})
    assert "write_text" not in changed.cached()
    assert small.parent(changed.result).data.metrics["count"] == 5

    for path in (small.workdir / "root").glob("cache-check-*/write-text/out"):
        path.unlink()
    missing = small.run(SMALL, {"text": "hello"})
    assert "write_text" not in missing.cached()
    assert small.parent(missing.result).data.metrics["count"] == 5
