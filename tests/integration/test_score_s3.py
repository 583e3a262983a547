"""`kubesage score` end to end through the CLI: s3:// in and out against a real moto server over HTTP
(moto stands in for S3), the threshold read from the evaluation.json registered beside the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from kubesage.cli.app import main
from kubesage.util.boto_sessions import new_boto3_session
from tests.servers import isolated_moto_env

pytestmark = pytest.mark.integration

BUCKET = "kubesage-scoring"


def _s3() -> Any:
    return new_boto3_session().client("s3")


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    return isolated_moto_env(moto_endpoint, BUCKET, monkeypatch, tmp_path)


def test_score_s3_in_and_out_at_the_registered_threshold(
    s3_env: str, trained_model: Path, churn_csv: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    (model_dir / "evaluation.json").write_text(
        json.dumps({"binary_classification_metrics": {"decision_threshold": 0.7}})
    )
    _s3().upload_file(str(churn_csv), BUCKET, "in/customers.csv")
    result = CliRunner().invoke(
        main,
        [
            "score",
            "--model",
            str(model_dir),
            "--input",
            f"s3://{BUCKET}/in/customers.csv",
            "--output",
            f"s3://{BUCKET}/out/scores.csv",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "scored 5,000 of 5,000 rows" in result.output
        and "threshold 0.7 -> s3://kubesage-scoring/out/scores.csv" in result.output
    )
    _s3().download_file(BUCKET, "out/scores.csv", str(tmp_path / "scores.csv"))
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"Phone": str})
    assert len(scores) == 5000
    assert (scores["churn"] == (scores["churn_probability"] >= 0.7).astype(int)).all()
    assert 0 < scores["churn"].sum() < (scores["churn_probability"] >= 0.5).sum()

    # A bad row fails the job with its place, and nothing is uploaded.
    bad = tmp_path / "bad.csv"
    lines = churn_csv.read_text().splitlines()
    lines[3] = lines[3].replace(",no,", ",no,,", 1)  # one field too many on line 4
    bad.write_text("\n".join(lines) + "\n")
    failed = CliRunner().invoke(
        main, ["score", "--model", str(model_dir), "--input", str(bad), "--output", f"s3://{BUCKET}/out/bad.csv"]
    )
    assert failed.exit_code == 2
    assert "bad.csv line 4: " in failed.output and "has 22 fields, expected 21" in failed.output
    assert "Contents" not in _s3().list_objects_v2(Bucket=BUCKET, Prefix="out/bad.csv")
