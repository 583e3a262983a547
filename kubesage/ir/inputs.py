"""Input data checked before anything runs: a missing file fails in a second, with no MLflow run left.

Which parameters hold input data is a naming convention, the same one the SageMaker compiler uses
to stage data: a string parameter named `input_data` or ending in `_data` names a file; one named
`captures` or ending in `_captures` names a folder of endpoint data capture (a local folder, or an
`s3://` prefix, which is not checked: an empty window is the drift step's to report). A local path
must be an existing file (folder); an `s3://bucket/key` URI of a file must answer a HEAD request.
Only a definite "not there" fails here: an S3 store this machine cannot reach or may not read is
left to the step (on SageMaker the job's role reads the data, not the caller), so the check never
blocks a run that could work.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from kubesage.errors import DataError

# One try with short timeouts: the check must answer within about a second either way.
_S3_TIMEOUT_SECONDS = 1.0


def is_data_parameter(name: str) -> bool:
    """A parameter naming an input data file."""
    return name == "input_data" or name.endswith("_data")


def is_data_folder_parameter(name: str) -> bool:
    """A parameter naming a folder (or S3 prefix) of captured endpoint traffic."""
    return name == "captures" or name.endswith("_captures")


def data_parameters(parameters: Mapping[str, Any]) -> dict[str, str]:
    """The parameters that name input data (string values only)."""
    return {name: value for name, value in parameters.items() if is_data_parameter(name) and isinstance(value, str)}


def check_inputs(parameters: Mapping[str, Any], s3_endpoint_url: str | None = None) -> None:
    """Raise DataError naming the first data parameter whose file (folder) or S3 object does not exist."""
    for name, value in data_parameters(parameters).items():
        check_input(name, value, s3_endpoint_url)
    for name, value in parameters.items():
        if is_data_folder_parameter(name) and isinstance(value, str):
            check_folder_input(name, value)


def check_folder_input(name: str, value: str) -> None:
    """A local folder must exist; a URI (s3:// and others) is left to the step that reads it."""
    text = value.strip()
    parsed = urlparse(text)
    if parsed.scheme.lower() == "file":
        path = Path(url2pathname(unquote(parsed.path)))
    elif parsed.scheme and len(parsed.scheme) > 1:
        return
    else:
        path = Path(text).expanduser()
    if not path.is_dir():
        raise DataError(f"parameter {name}: {path} is not a folder; pass the capture folder (or an s3:// prefix)")


def check_input(name: str, value: str, s3_endpoint_url: str | None = None) -> None:
    text = value.strip()
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        _check_s3_object(name, text, parsed.netloc, parsed.path.lstrip("/"), s3_endpoint_url)
        return
    if scheme == "file":
        path = Path(url2pathname(unquote(parsed.path)))
    elif scheme and len(scheme) > 1:
        return  # another store (gs://, https://): the step that reads it reports problems
    else:
        path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"parameter {name}: input data file {path} does not exist; check the path (nothing was run)")
    if not path.is_file():
        raise DataError(f"parameter {name}: input data {path} is a directory; pass the CSV file itself")


def _check_s3_object(name: str, uri: str, bucket: str, key: str, endpoint_url: str | None) -> None:
    if not bucket or not key or key.endswith("/"):
        raise DataError(f"parameter {name}: {uri} must name one S3 object, as s3://bucket/key")
    from botocore.config import Config

    from kubesage.util.aws import AwsFailure, on_aws_failure
    from kubesage.util.boto_sessions import new_boto3_session

    def absent(failure: AwsFailure) -> DataError | None:
        """Only a definite "not there" stops the run; no credentials or no route from here (or a
        refusal) is left to the step, which runs with its own role."""
        if failure.code in {"404", "NoSuchKey", "NotFound"}:
            return DataError(f"parameter {name}: no S3 object {uri}; check the bucket and key (nothing was run)")
        if failure.code == "NoSuchBucket":
            return DataError(f"parameter {name}: S3 bucket {bucket!r} does not exist (nothing was run)")
        return None

    config = Config(connect_timeout=_S3_TIMEOUT_SECONDS, read_timeout=_S3_TIMEOUT_SECONDS, retries={"max_attempts": 1})
    with on_aws_failure(absent):
        client = new_boto3_session().client("s3", endpoint_url=endpoint_url or None, config=config)
        client.head_object(Bucket=bucket, Key=key)
