"""`kubesage runs`: readable at 100 columns, the parameters that differ, --wide and --compare."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from rich.console import Console
from rich.table import Table

from kubesage import tracking as t
from kubesage.cli import main
from kubesage.cli.run_history import compare_table, differing_params, runs_table
from kubesage.errors import ParameterError
from kubesage.tracking import finish_pipeline_run, start_pipeline_run
from kubesage.tracking.filters import filter_literal
from kubesage.tracking.history import RunRow, get_runs, recent_runs

METRICS = {
    "accuracy": 0.93456,
    "f1": 0.9123,
    "roc_auc": 0.95678,
    "pr_auc": 0.9412,
    "log_loss": 0.2712,
    "precision": 0.9,
    "recall": 0.91,
    "true_positive_rate": 0.91,
    "false_positive_rate": 0.05,
}


def _row(run_id: str, runner: str, max_depth: str, **metrics: float) -> RunRow:
    params = {"input_data": "/data/churn.csv", "max_depth": max_depth, "eta": "0.2", "num_round": "100", "seed": "42"}
    return RunRow(
        run_id=run_id,
        started="2026-12-01 04:22:17",
        pipeline="customer-churn",
        runner=runner,
        status="FINISHED",
        registered="customer-churn v3",
        metrics={**METRICS, **metrics},
        params=params,
    )


def _render(table: Table, width: int = 100) -> list[str]:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text().splitlines()


ROWS = [
    _row("a1b2c3d4e5f60718293a4b5c6d7e8f90", "sagemaker-local", "6", roc_auc=0.961),
    _row("0f9e8d7c6b5a49382716a5b4c3d2e1f0", "local", "4"),
]


def test_the_table_fits_100_columns_without_cutting_a_cell() -> None:
    lines = _render(runs_table(ROWS))
    assert max(len(line) for line in lines) <= 100
    assert "…" not in "\n".join(lines)
    text = "\n".join(lines)
    assert "sagemaker-local" in text and "0.961" in text and "0.957" in text  # rounded to 3 places
    assert "a1b2c3d4" in text and "a1b2c3d4e5" not in text  # the short id


def test_only_the_parameters_that_differ_are_shown() -> None:
    assert differing_params(ROWS) == ["max_depth"]
    text = "\n".join(_render(runs_table(ROWS)))
    assert "max_depth" in text and "num_round" not in text


def test_wide_shows_every_metric_and_parameter() -> None:
    text = "\n".join(_render(runs_table(ROWS, wide=True), width=400))
    for name in [*METRICS, "num_round", "eta", ROWS[0].run_id]:
        assert name in text


def test_compare_marks_the_rows_that_differ() -> None:
    lines = _render(compare_table(ROWS))
    marked = {" ".join(line.split()[1:-2]) for line in lines if line.lstrip().startswith("*")}
    assert marked == {"runner", "roc_auc", "param max_depth"}
    assert any(line.split()[:1] == ["f1"] and line.count("0.9123") == 2 for line in lines)


def _pipeline_run(name: str, runner: str, max_depth: int) -> str:
    run = start_pipeline_run(name, runner, {"max_depth": max_depth, "input_data": "churn.csv"})
    finish_pipeline_run(run, "FINISHED")
    return run.run_id


def test_runs_filters_in_either_spelling_and_compares_by_short_id(mlflow_sqlite: str) -> None:
    first = _pipeline_run("customer-churn", "local", 4)
    second = _pipeline_run("customer-churn", "sagemaker-local", 6)
    _pipeline_run("customerXchurn", "local", 4)  # LIKE's `_` must not let this one in
    for spelling in ("customer_churn", "customer-churn"):
        assert [r.run_id for r in recent_runs(spelling)] == [second, first]
    rows = get_runs([first[:8], second])
    assert [r.params["max_depth"] for r in rows] == ["4", "6"]
    with pytest.raises(ParameterError, match="no kubesage pipeline run with id 'zzzz'"):
        get_runs(["zzzz"])
    result = CliRunner().invoke(main, ["runs", "--compare", first[:8], second[:8]])
    assert result.exit_code == 0, result.output
    assert "max_depth" in result.output and "sagemaker-local" in result.output
    one = CliRunner().invoke(main, ["runs", "--compare", first[:8]])
    assert one.exit_code == 2 and "two or more" in one.output


# --- the pipeline name is a quoted literal of MLflow's filter, never filter syntax (from main) ---
@pytest.mark.parametrize(
    ("value", "literal"),
    [("customer-churn", "'customer-churn'"), ("it's", '"it\'s"'), ('say "hi"', "'say \"hi\"'")],
)
def test_filter_literal_picks_the_quote_the_value_lacks(value: str, literal: str) -> None:
    assert filter_literal(value) == literal


@pytest.mark.parametrize("value", ["both ' and \"", "back\\slash", "new\nline"])
def test_filter_literal_refuses_what_mlflow_cannot_express(value: str) -> None:
    with pytest.raises(ParameterError, match="cannot be searched for"):
        filter_literal(value)


def test_pipeline_names_with_quotes_find_exactly_their_runs(mlflow_sqlite: str) -> None:
    injection = "x' or tags.`kubesage.kind` = 'pipeline"
    names = ["customer-churn", "it's", 'say "hi"', injection]
    for name in names:
        run = t.start_pipeline_run(name, "local", {}, uri=mlflow_sqlite)
        t.finish_pipeline_run(run, "FINISHED")
    for name in names:
        found = recent_runs(pipeline=name, uri=mlflow_sqlite)
        assert [row.pipeline for row in found] == [name]
    assert len(recent_runs(uri=mlflow_sqlite)) == 4
