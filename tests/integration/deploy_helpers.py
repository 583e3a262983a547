"""Shared set-up for the deploy suites against moto: the execution role, a model artifact, a package."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path

import boto3
import pytest

from kubesage.util.boto_sessions import new_boto3_session


def aws_against_moto(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, region: str, bucket: str, role_arn: str
) -> boto3.Session:
    """A session whose every client (and every boto3 client kubesage makes) speaks to moto, with the
    deploy bucket and the execution role in place."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    session = new_boto3_session(region_name=region)
    s3 = session.client("s3")
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    ensure_execution_role(session, role_arn)
    return session


def ensure_execution_role(session: boto3.Session, role_arn: str) -> None:
    """The SageMaker execution role `--execution-role` names: the stack attaches the rollback alarms'
    DescribeAlarms policy to it by name, so it must exist (as it does in a real account)."""
    iam = session.client("iam")
    name = role_arn.rsplit("/", 1)[-1]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))


def upload_model(session: boto3.Session, bucket: str, model_dir: Path, key: str, tamper: bool = False) -> str:
    """The model directory as the training job leaves it in S3 (model.tar.gz); optionally altered after."""
    data = (model_dir / "xgboost-model.ubj").read_bytes() + (b" " if tamper else b"")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model.ubj")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    session.client("s3").put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return f"s3://{bucket}/{key}"


def create_package(session: boto3.Session, status: str, model_data_url: str) -> str:
    """A model package in the churn group, as the register step makes it."""
    sagemaker = session.client("sagemaker")
    group = "customer-churn-models"
    with contextlib.suppress(sagemaker.exceptions.ClientError):
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arn: str = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [
                {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/kubesage:1", "ModelDataUrl": model_data_url}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    )["ModelPackageArn"]
    return arn
