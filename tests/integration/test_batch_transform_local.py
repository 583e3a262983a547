"""A SageMaker Batch Transform of the churn model started by kubesage, run for real by the SageMaker
SDK's local mode.

`kubesage score --runner sagemaker-local` encodes the raw rows with the model's own feature schema
(one text/csv line of features per customer, SageMaker XGBoost's convention), uploads them and the
model to S3, creates the model and the transform job through the SDK's local client, and joins the
answers back to the customers' ids. Local mode starts the kubesage image's `serve` with
docker-compose, asks it GET /execution-parameters, splits the input at lines into multi-record
requests to /invocations (MaxPayloadInMB) and assembles the answers line by line, as SageMaker does;
S3 is moto in server mode on 127.0.0.1 (standing in for S3). The output must equal `kubesage score`
(in process) on the same raw rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from kubesage.churn.scoring import load_scoring_model, score_file
from kubesage.cli.app import main
from tests.needs import IMAGE, missing_image, require
from tests.servers import moto_session

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow]

BUCKET = "kubesage-transform"


def test_batch_transform_in_local_mode_equals_kubesage_score(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, trained_model: Path, churn_csv: Path, tmp_path: Path
) -> None:
    require(missing_image(IMAGE))
    assert shutil.which("docker"), "Docker is required for SageMaker local mode"
    boto = moto_session(moto_endpoint, BUCKET, monkeypatch)
    transformed_csv = tmp_path / "transformed.csv"
    result = CliRunner().invoke(
        main,
        [
            "score",
            "--runner", "sagemaker-local",
            "--model", str(trained_model),
            "--input", str(churn_csv),  # the 5,000 real rows, raw: kubesage encodes and uploads them
            "--output", str(transformed_csv),
            "--threshold", "0.5",  # the fixture's model has no evaluation.json
            "--image", IMAGE,
            "--bucket", BUCKET,
            "--option", f"s3_endpoint_url={moto_endpoint}",
            "--job-name", "churn-transform-test",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "transform job churn-transform-test: Completed" in result.output
    # The job's own output, where SageMaker puts it (local mode adds the job's name): one answer per line.
    s3 = boto.client("s3", endpoint_url=moto_endpoint)
    key = "kubesage/transform/runs/churn-transform-test/output/churn-transform-test/customers.csv.out"
    answers = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert sum(1 for line in answers.splitlines() if line.strip()) == 5000

    score_file(churn_csv, tmp_path / "scores.csv", load_scoring_model(trained_model, 0.5))
    scored = pd.read_csv(tmp_path / "scores.csv", dtype={"Phone": str})
    transformed = pd.read_csv(transformed_csv, dtype={"Phone": str})
    assert list(transformed.columns) == list(scored.columns) == ["Phone", "churn_probability", "churn"]
    assert len(transformed) == len(scored) == 5000
    assert transformed["Phone"].tolist() == scored["Phone"].tolist()
    np.testing.assert_allclose(
        transformed["churn_probability"].to_numpy(), scored["churn_probability"].to_numpy(), rtol=0, atol=1e-6
    )
    assert (transformed["churn"] == scored["churn"]).all()
