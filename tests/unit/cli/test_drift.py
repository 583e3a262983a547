"""`kubesage drift`'s exit status and messages, in-process (click's runner): 0 without violations, 3 with,
1 with one line naming what is missing and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from kubesage.churn.features import FeatureSchema
from kubesage.cli.app import main
from tests.monitoring_data import held_out_rows, model_baseline, write_captures


@pytest.fixture(scope="module")
def baseline(prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_baseline(prepared, tmp_path_factory.mktemp("baseline"))


def drift(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["drift", "--no-track", *args])
    return result.exit_code, result.stdout, result.stderr


def test_exit_status_says_whether_violations_were_found(churn: pd.DataFrame, baseline: Path, tmp_path: Path) -> None:
    rows = held_out_rows(churn)
    schema = FeatureSchema.load(baseline)
    same = write_captures(rows, tmp_path / "same", schema, ("CSV",))
    # --retrain-data starts nothing when no feature drifted (the data path is never even read).
    args = ["--captures", str(same), "--baseline", str(baseline), "--output-dir", str(tmp_path / "a")]
    code, out, _ = drift(*args, "--retrain-data", str(tmp_path / "not-read.csv"))
    assert code == 0 and "retraining" not in out, out
    assert "0 violation(s); drifted: none" in out and f"report: {tmp_path / 'a' / 'report.html'}" in out
    missing = write_captures(rows.drop(columns=["Day Calls"]), tmp_path / "missing", schema, ("JSON",))
    code, out, _ = drift("--captures", str(missing), "--baseline", str(baseline), "--output-dir", str(tmp_path / "b"))
    assert code == 3 and "missing_column_check: Day Calls" in out
    code, out, _ = drift(
        "--captures", str(missing), "--baseline", str(baseline), "--output", "json", "--output-dir", str(tmp_path / "c")
    )
    summary = json.loads(out)
    assert code == 3 and summary["status"] == "violations" and summary["violations"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--baseline", "{tmp}/nowhere"], "no baseline statistics at {tmp}/nowhere/statistics.json"),
        (["--baseline", "{baseline}", "--captures", "{tmp}/none"], "capture folder {tmp}/none does not exist"),
        (["--baseline", "{baseline}", "--captures", "{tmp}", "--last", "soon"], "--last 'soon' is not a duration"),
        (["--baseline", "{baseline}", "--captures", "{tmp}"], "no captured requests in {tmp} for the window"),
    ],
)
def test_a_check_that_cannot_run_says_why_in_one_line(
    baseline: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    filled = [a.format(tmp=tmp_path, baseline=baseline) for a in args]
    if "--captures" not in filled:
        filled += ["--captures", str(tmp_path)]
    code, out, err = drift(*filled)
    assert code == 1 and message.format(tmp=tmp_path) in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1
