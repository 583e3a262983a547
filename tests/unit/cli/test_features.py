"""`kubesage features`: request bodies from a churn CSV; errors reported like every other command's."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from kubesage.cli import main
from kubesage.cli.features import read_records

CSV = "State,Account Length,Day Mins,Churn?\nKS,128,265.1,False.\nOH,,bad,True.\nNJ,137,243.4,False.\n"


def test_records_are_typed_the_label_dropped_and_bad_numbers_left_for_the_server(tmp_path: Path) -> None:
    data = tmp_path / "churn.csv"
    data.write_text(CSV)
    assert read_records(data, rows=2) == [
        {"State": "KS", "Account Length": 128.0, "Day Mins": 265.1},
        {"State": "OH", "Account Length": None, "Day Mins": "bad"},
    ]


def test_records_command_writes_a_request_body(tmp_path: Path) -> None:
    data = tmp_path / "churn.csv"
    data.write_text(CSV)
    result = CliRunner().invoke(main, ["features", "records", str(data), "--rows", "1"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"records": [{"State": "KS", "Account Length": 128.0, "Day Mins": 265.1}]}


def test_a_missing_csv_is_one_error_line_with_the_data_errors_code(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = CliRunner().invoke(main, ["features", "records", str(missing)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {missing} does not exist; pass a churn CSV with a header row\n"


def test_a_csv_without_rows_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "empty.csv"
    data.write_text("State,Churn?\n")
    result = CliRunner().invoke(main, ["features", "transform", str(data), "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {data} has no data rows\n"
