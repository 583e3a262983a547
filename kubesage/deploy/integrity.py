"""What `kubesage deploy` checks before it trusts a model package: its artifact and its MLflow version.

The register step records the sha256 of the model file as training wrote it (MLflow version tag
`kubesage.model_sha256`) and the SageMaker execution that made it (`kubesage.sagemaker_execution_arn`;
the package records the same execution in its CustomerMetadataProperties `kubesage:execution`).
Deploy reads the package's model.tar.gz from S3, hashes the model file inside and refuses, in one
line, a digest other than the one recorded, or a package and a `--model` from different executions.
The digest it verified goes to the SageMaker model's environment, so every serving instance started
later (scale-out, replacement) checks the artifact again before it loads it.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.errors import DeployError, ModelError

TAG_EXECUTION_ARN = "kubesage.sagemaker_execution_arn"  # components.register.TAG_EXECUTION_ARN
PACKAGE_EXECUTION_KEY = "kubesage:execution"
_MODELS_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[\w-]+))")


@dataclass(frozen=True)
class Recorded:
    """What was recorded about the model `--model` names, and where."""

    sha256: str
    execution_arn: str | None
    source: str


def recorded_for(model: str) -> Recorded:
    """The digest (and execution) recorded at registration for a models:/ URI, or a model directory's own."""
    from kubesage.churn.modelio import TAG_MODEL_SHA256, model_sha256

    match = _MODELS_URI.fullmatch(model)
    if match is None:
        if model.startswith("models:/"):
            raise DeployError(f"--model {model}: pin a version (models:/NAME/VERSION) or an alias (models:/NAME@ALIAS)")
        return Recorded(model_sha256(model), None, f"the model directory {model}")
    from mlflow.exceptions import MlflowException

    from kubesage.tracking import mlflow_client

    client = mlflow_client()
    try:
        if match["version"]:
            version = client.get_model_version(match["name"], match["version"])
        else:
            version = client.get_model_version_by_alias(match["name"], match["alias"])
    except MlflowException as exc:
        raise DeployError(f"could not read {model} from MLflow: {exc.message}") from exc
    tags = dict(version.tags or {})
    digest = tags.get(TAG_MODEL_SHA256)
    if not digest:
        raise DeployError(
            f"{model} records no {TAG_MODEL_SHA256}, so its artifact cannot be verified; "
            "register it again with kubesage's pipeline"
        )
    return Recorded(digest, tags.get(TAG_EXECUTION_ARN) or None, model)


def check_same_execution(package_arn: str, metadata: dict[str, str], recorded: Recorded) -> None:
    """Refuse a package and a --model that two different pipeline executions registered."""
    package_execution = metadata.get(PACKAGE_EXECUTION_KEY) or None
    if package_execution is None and recorded.execution_arn is None:
        return  # neither came from a SageMaker execution (a local run, a hand-made package)
    if package_execution != recorded.execution_arn:
        raise DeployError(
            f"model package {package_arn} comes from execution {package_execution or '(none recorded)'}, but "
            f"{recorded.source} from {recorded.execution_arn or '(none recorded)'}; deploy the package and "
            "the MLflow version one pipeline run registered together"
        )


def artifact_sha256(s3: Any, model_data_url: str) -> str:
    """The sha256 of the model file inside the package's model.tar.gz, read from S3."""
    from kubesage.churn.modelio import model_sha256

    bucket, _, key = model_data_url.removeprefix("s3://").partition("/")
    if not model_data_url.startswith("s3://") or not bucket or not key:
        raise DeployError(f"the model package's ModelDataUrl {model_data_url!r} is not an s3://BUCKET/KEY URI")
    with tempfile.TemporaryDirectory(prefix="kubesage-verify-") as tmp:
        archive = Path(tmp) / "model.tar.gz"
        s3.download_file(bucket, key, str(archive))
        extracted = Path(tmp) / "model"
        try:
            with tarfile.open(archive, "r:*") as tar:
                # The "data" filter refuses links out of the folder, devices and absolute paths.
                tar.extractall(extracted, filter="data")
            return model_sha256(extracted)
        except (tarfile.TarError, ModelError) as exc:
            raise DeployError(f"the model package's artifact {model_data_url} is not a model archive: {exc}") from exc


def verify_artifact(package_arn: str, model_data_url: str, actual: str, recorded: Recorded) -> None:
    if actual != recorded.sha256:
        raise DeployError(
            f"model package {package_arn}'s artifact {model_data_url} has sha256 {actual}, but {recorded.source} "
            f"records {recorded.sha256}: the artifact changed after registration; refusing to deploy it"
        )
