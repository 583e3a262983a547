"""`kubesage runs --pipeline NAME`: the name is a quoted literal of MLflow's filter, never filter syntax."""

from __future__ import annotations

import pytest

from kubesage import tracking as t
from kubesage.errors import ParameterError
from kubesage.run_history import filter_literal, recent_runs


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
