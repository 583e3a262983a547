"""The pre-run S3 check HEADs the object over real HTTP; moto in server mode stands in for S3."""

from __future__ import annotations

import boto3
import pytest

from kubesage.errors import DataError
from kubesage.ir.inputs import check_inputs

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket="churn-inputs")
    client.put_object(Bucket="churn-inputs", Key="data/churn.csv", Body=b"a,b\n1,2\n")
    return client


def test_an_existing_object_passes(s3: object, moto_endpoint: str) -> None:
    check_inputs({"input_data": "s3://churn-inputs/data/churn.csv"}, moto_endpoint)


def test_a_missing_object_or_bucket_fails_with_the_uri(s3: object, moto_endpoint: str) -> None:
    with pytest.raises(DataError, match=r"parameter input_data: no S3 object s3://churn-inputs/data/nope.csv"):
        check_inputs({"input_data": "s3://churn-inputs/data/nope.csv"}, moto_endpoint)
    with pytest.raises(DataError, match="no S3 object s3://no-such-bucket/churn.csv"):
        check_inputs({"input_data": "s3://no-such-bucket/churn.csv"}, moto_endpoint)


def test_an_unreachable_store_is_left_to_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """No route from here is not "missing": on SageMaker the job's role reads the data, not the caller."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    check_inputs({"input_data": "s3://churn-inputs/churn.csv"}, "http://127.0.0.1:9")
