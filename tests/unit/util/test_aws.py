"""botocore's errors mapped once (kubesage.util.aws): what a failure reads as, and what it becomes."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from kubesage.errors import AccessDeniedError, CloudError, DataError, DeployError
from kubesage.util.aws import aws_call, failure_of, on_aws_failure


def _client_error(code: str, message: str = "it failed") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetObject")


def test_a_failure_reads_aws_answer_or_botocore_text() -> None:
    answered = failure_of(_client_error("NoSuchKey", "The specified key does not exist."))
    assert (answered.kind, answered.answered, answered.code) == ("answered", True, "NoSuchKey")
    assert answered.message == "The specified key does not exist."
    assert answered.not_found and not answered.access_denied
    assert "An error occurred (NoSuchKey) when calling the GetObject operation" in answered.text
    unreachable = failure_of(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert (unreachable.kind, unreachable.answered, unreachable.never_sent, unreachable.code) == (
        "unreachable",
        False,
        True,
        "",
    )
    assert unreachable.message == unreachable.text == 'Could not connect to the endpoint URL: "http://127.0.0.1:9"'


@pytest.mark.parametrize(
    ("exc", "kind", "never_sent"),
    [
        (ConnectTimeoutError(endpoint_url="http://x"), "connect_timeout", True),
        (ReadTimeoutError(endpoint_url="http://x"), "read_timeout", False),
        (NoCredentialsError(), "other", False),
    ],
    ids=["connect-timeout", "read-timeout", "no-credentials"],
)
def test_no_answer_says_whether_the_request_was_sent(exc: Exception, kind: str, never_sent: bool) -> None:
    failure = failure_of(exc)
    assert (failure.kind, failure.never_sent, failure.answered) == (kind, never_sent, False)


def test_aws_call_names_the_call_and_the_permission() -> None:
    with (
        pytest.raises(AccessDeniedError, match=r"AWS denied s3:GetObject s3://b/k: no\. Allow s3:GetObject for"),
        aws_call("s3:GetObject s3://b/k"),
    ):
        raise _client_error("AccessDenied", "no")
    with (
        pytest.raises(DeployError, match=r"^AWS refused s3:PutObject x: SlowDown: later$"),
        aws_call("s3:PutObject x", DeployError),
    ):
        raise _client_error("SlowDown", "later")
    with (
        pytest.raises(CloudError, match=r"AWS call s3:GetObject x failed: Could not connect .*; check credentials"),
        aws_call("s3:GetObject x"),
    ):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


def test_on_aws_failure_raises_what_the_handler_returns_or_leaves_quietly() -> None:
    seen = []
    with on_aws_failure(lambda failure: seen.append(failure.code)):
        raise _client_error("404")
    assert seen == ["404"]
    with (
        pytest.raises(DataError, match="^missing: NoSuchBucket$") as raised,
        on_aws_failure(lambda failure: DataError(f"missing: {failure.code}")),
    ):
        raise _client_error("NoSuchBucket")
    assert isinstance(raised.value.__cause__, ClientError)
    # anything else passes through untouched
    with pytest.raises(ValueError, match="not botocore"), on_aws_failure(lambda failure: DataError("never")):
        raise ValueError("not botocore")
