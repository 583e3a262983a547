"""A SageMaker Batch Transform of the churn model, run for real by the SageMaker SDK's local mode.

Local mode starts the kubesage image's `serve` with docker-compose, asks it GET /execution-parameters
(MaxPayloadInMB comes from there), splits the input at lines into multi-record requests to
/invocations and assembles the answers line by line, as SageMaker does; S3 is moto in server mode
on 127.0.0.1 (standing in for S3). The input is the real churn rows as feature vectors (text/csv,
SageMaker XGBoost's convention, made by the model's own feature schema); the output must equal
`kubesage score` on the same raw rows.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kubesage.churn.scoring import load_scoring_model, score_file
from kubesage.cli.features import feature_lines, read_records
from kubesage.util.ports import free_port
from tests.needs import IMAGE, missing_image, require
from tests.servers import moto_session

pytestmark = [pytest.mark.integration, pytest.mark.container, pytest.mark.slow]

BUCKET = "kubesage-transform"


def _model_tar(model_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("xgboost-model.ubj", "feature_schema.json"):
            archive.add(model_dir / name, arcname=name)
    return buffer.getvalue()


def test_batch_transform_in_local_mode_equals_kubesage_score(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, trained_model: Path, churn_csv: Path, tmp_path: Path
) -> None:
    require(missing_image(IMAGE))
    assert shutil.which("docker"), "Docker is required for SageMaker local mode"
    boto = moto_session(moto_endpoint, BUCKET, monkeypatch)
    s3 = boto.client("s3", endpoint_url=moto_endpoint)
    run = uuid.uuid4().hex[:8]
    s3.put_object(Bucket=BUCKET, Key=f"{run}/model/model.tar.gz", Body=_model_tar(trained_model))
    # The 5,000 real rows as the feature vectors a Batch Transform reads (one line each, no header).
    vectors = feature_lines(read_records(churn_csv), str(trained_model))
    s3.put_object(Bucket=BUCKET, Key=f"{run}/in/customers.csv", Body=("\n".join(vectors) + "\n").encode())

    from sagemaker.core.local.local_session import LocalSession

    session = LocalSession(boto_session=boto, s3_endpoint_url=moto_endpoint)
    session.config = {"local": {"local_code": True, "serving_port": free_port()}}
    client = session.sagemaker_client
    client.create_model(
        ModelName=f"churn-{run}",
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{BUCKET}/{run}/model/model.tar.gz",
            # Local mode extracts the model into a 0700 temporary folder of this (root) process,
            # which the image's unprivileged user cannot read; SageMaker mounts it readable.
            "Environment": {"KUBESAGE_SERVE_USER": "root"},
        },
    )
    client.create_transform_job(
        TransformJobName=f"churn-transform-{run}",
        ModelName=f"churn-{run}",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{run}/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/{run}/out", "Accept": "text/csv", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "local", "InstanceCount": 1},
        # Local mode takes the strategy in the API's spelling only ('MultiRecord'); SageMaker's
        # documented /execution-parameters value is 'MULTI_RECORD', so it is given here.
        BatchStrategy="MultiRecord",
    )
    described = client.describe_transform_job(TransformJobName=f"churn-transform-{run}")
    assert described["TransformJobStatus"] == "Completed"
    # SageMaker writes <S3OutputPath>/<input file>.out; local mode puts it under the job's name.
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{run}/out/")["Contents"]
    assert [o["Key"].rsplit("/", 1)[-1] for o in listed] == ["customers.csv.out"]
    body = s3.get_object(Bucket=BUCKET, Key=listed[0]["Key"])["Body"].read().decode()
    transformed = np.array([float(line) for line in body.splitlines() if line.strip()])

    score_file(churn_csv, tmp_path / "scores.csv", load_scoring_model(trained_model, 0.5))
    scored = pd.read_csv(tmp_path / "scores.csv", dtype={"Phone": str})
    assert len(transformed) == len(scored) == 5000
    np.testing.assert_allclose(transformed, scored["churn_probability"].to_numpy(), rtol=0, atol=1e-6)
