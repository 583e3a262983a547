"""The sagemaker-local runner's model package, sent to moto in server mode over HTTP (local_package.py).

moto stands in for S3 (the model artifact local mode wrote) and SageMaker's control plane (the group
and the package). The whole chain from a local-mode run through approve and deploy is in
tests/compliance/test_model_package.py; here, what that run cannot show: idempotence, a missing
artifact, an endpoint that does not answer.
"""

from __future__ import annotations

import datetime

import boto3
import pytest

from kubesage.deploy.stack import approve_model_package
from kubesage.errors import RunnerError
from kubesage.runners.sagemaker.client import SageMakerClient
from kubesage.runners.sagemaker.local_package import check_endpoint, register_package
from tests.servers import moto_session

pytestmark = pytest.mark.integration
BUCKET = "kubesage-local-package"
EXECUTION = "execution-7d1c"


def _client(session: boto3.Session, endpoint: str) -> SageMakerClient:
    return SageMakerClient(
        s3=session.client("s3", endpoint_url=endpoint), sagemaker=session.client("sagemaker", endpoint_url=endpoint)
    )


def _request(group: str, url: str) -> dict[str, object]:
    return {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [{"Image": "kubesage/xgboost-daal4py:latest", "ModelDataUrl": url}],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "CustomerMetadataProperties": {
            "kubesage:pipeline": "p",
            "kubesage:task": "register",
            "kubesage:execution": EXECUTION,
        },
    }


def test_the_package_is_made_once_per_execution(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    session = moto_session(moto_endpoint, BUCKET, monkeypatch)
    client = _client(session, moto_endpoint)
    url = f"s3://{BUCKET}/runs/{EXECUTION}/train/model.tar.gz"
    client.s3.put_object(Bucket=BUCKET, Key=url.removeprefix(f"s3://{BUCKET}/"), Body=b"model")
    started = datetime.datetime.now(datetime.UTC)
    first = register_package(client, _request("once", url), EXECUTION, started)
    assert first.created and first.status == "PendingManualApproval" and first.model_data_url == url
    described = client.sagemaker.describe_model_package(ModelPackageName=first.arn)
    assert described["ModelPackageGroupName"] == "once"
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == url
    assert described["CustomerMetadataProperties"]["kubesage:execution"] == EXECUTION
    again = register_package(client, _request("once", url), EXECUTION, started)
    assert (again.arn, again.created) == (first.arn, False)
    listed = client.sagemaker.list_model_packages(ModelPackageGroupName="once")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [first.arn]
    # `kubesage approve` keeps the execution deploy checks (moto 5.2 replaces the metadata an update leaves out).
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    assert approve_model_package(first.arn, region="us-east-1") == "Approved"
    approved = client.sagemaker.describe_model_package(ModelPackageName=first.arn)
    assert approved["CustomerMetadataProperties"] == described["CustomerMetadataProperties"]


def test_a_missing_artifact_makes_nothing(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(moto_session(moto_endpoint, BUCKET, monkeypatch), moto_endpoint)
    url = f"s3://{BUCKET}/runs/gone/train/model.tar.gz"
    with pytest.raises(RunnerError, match=r"s3:HeadObject on s3://.*/gone/train/model.tar.gz \(the model package's"):
        register_package(client, _request("never", url), EXECUTION, datetime.datetime.now(datetime.UTC))
    groups = client.sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert "never" not in [g["ModelPackageGroupName"] for g in groups]


def test_an_endpoint_that_does_not_answer_is_refused_before_the_run(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = moto_session(moto_endpoint, BUCKET, monkeypatch)
    check_endpoint(_client(session, moto_endpoint), "not-made-yet", moto_endpoint)  # "no such group" is an answer
    closed = "http://127.0.0.1:9"
    with pytest.raises(RunnerError) as refused:
        check_endpoint(_client(session, closed), "customer-churn-models", closed)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"this pipeline registers a model package once local mode has run its steps, and the "
                              f"SageMaker endpoint ({closed}) did not answer")  # fmt: skip
    assert message.endswith("--option model_package=false to register in MLflow only")
