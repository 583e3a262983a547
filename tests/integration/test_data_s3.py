"""s3:// input through boto3 over HTTP against a real moto server on the loopback interface."""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kubesage.churn.data import file_sha256, read_raw_table, resolve_input
from kubesage.errors import DataError
from kubesage.util.boto_sessions import new_boto3_session
from tests.servers import isolated_moto_env

pytestmark = pytest.mark.integration

BUCKET = "kubesage-input"


def _client(service: str) -> Any:
    """A client from a fresh session, so it sees the credentials set by this test."""
    return new_boto3_session().client(service)


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    return isolated_moto_env(moto_endpoint, BUCKET, monkeypatch, tmp_path)


def test_s3_object_downloads_and_validates(s3_env: str, tmp_path: Path, churn_csv: Path) -> None:
    _client("s3").upload_file(str(churn_csv), BUCKET, "raw/2024/churn.txt")
    workdir = tmp_path / "work"
    local = resolve_input(f"s3://{BUCKET}/raw/2024/churn.txt", workdir=workdir)
    assert local == workdir / "churn.txt"
    assert file_sha256(local) == file_sha256(churn_csv)
    table = read_raw_table(local)
    assert len(table) == 5000


def test_s3_without_workdir_uses_a_fresh_temp_dir(s3_env: str) -> None:
    _client("s3").put_object(Bucket=BUCKET, Key="small.csv", Body=b"a,b\n1,2\n")
    first = resolve_input(f"s3://{BUCKET}/small.csv")
    second = resolve_input(f"s3://{BUCKET}/small.csv")
    assert first.read_bytes() == b"a,b\n1,2\n"
    assert first.parent != second.parent


def test_missing_key_is_a_data_error(s3_env: str, tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/raw/absent.csv"
    with pytest.raises(DataError, match=r"s3://kubesage-input/raw/absent\.csv: no such S3 object") as info:
        resolve_input(uri, workdir=tmp_path)
    assert info.value.__cause__ is not None  # the botocore error is chained, not swallowed
    assert list(tmp_path.iterdir()) == []


def test_missing_bucket_is_a_data_error(s3_env: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"s3://no-such-bucket-kubesage/churn\.csv: no such S3 object"):
        resolve_input("s3://no-such-bucket-kubesage/churn.csv", workdir=tmp_path)


def test_unreachable_endpoint_is_a_data_error(s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(DataError, match=r"s3://kubesage-input/churn\.csv: could not download from S3"):
        resolve_input(f"s3://{BUCKET}/churn.csv", workdir=tmp_path)


@contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """Make the moto server check signatures and IAM policies (it allows everything by default)."""

    def reset_auth(count: str) -> str:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=count.encode(),
            headers={"Content-Type": "text/plain"},  # a form content type would hide the body
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])

    previous = reset_auth("0")
    try:
        yield
    finally:
        reset_auth(previous)


def test_access_denied_is_a_data_error(s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _client("s3").put_object(Bucket=BUCKET, Key="restricted/churn.csv", Body=b"a,b\n1,2\n")
    iam = _client("iam")
    user = f"kubesage-lister-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {  # may list the bucket, may not read objects
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="list-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    uri = f"s3://{BUCKET}/restricted/churn.csv"
    with iam_enforced(s3_env):
        assert _client("s3").list_objects_v2(Bucket=BUCKET, Prefix="restricted/")["KeyCount"] == 1
        with pytest.raises(DataError, match=r"restricted/churn\.csv: access denied; .*s3:GetObject"):
            resolve_input(uri, workdir=tmp_path)
