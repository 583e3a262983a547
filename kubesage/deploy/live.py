"""Which model version is live, recorded in the registry once (and only once) an endpoint serves it.

Two records, written by `kubesage deploy` and `kubesage rollback` after the verifier saw the endpoint
serve the new package, never before (a rolled-back update leaves both as they were):

- the SageMaker model package: CustomerMetadataProperties `kubesage:live` = the stack, `kubesage:model`
  = the `--model` it was deployed with, and `kubesage:previous-package` / `kubesage:previous-model` =
  what was live before it (what `kubesage rollback` returns to); the package it replaced loses
  `kubesage:live`;
- the MLflow model version (for a models:/ URI): the registered model's alias `live` moves to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubesage.errors import DeployError
from kubesage.util.aws import aws_call

LIVE_KEY = "kubesage:live"
MODEL_KEY = "kubesage:model"
PREVIOUS_PACKAGE_KEY = "kubesage:previous-package"
PREVIOUS_MODEL_KEY = "kubesage:previous-model"
LIVE_ALIAS = "live"


@dataclass(frozen=True)
class LiveVersion:
    """A model package and the --model (models:/NAME/N or a directory) it was deployed with."""

    package_arn: str
    model: str


def _metadata(package: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (package.get("CustomerMetadataProperties") or {}).items()}


def previous_of(sagemaker: Any, package_arn: str) -> LiveVersion | None:
    """What was live before `package_arn` went live, as its metadata records it."""
    with aws_call(f"sagemaker:DescribeModelPackage {package_arn}", DeployError):
        metadata = _metadata(sagemaker.describe_model_package(ModelPackageName=package_arn))
    if not metadata.get(PREVIOUS_PACKAGE_KEY) or not metadata.get(PREVIOUS_MODEL_KEY):
        return None
    return LiveVersion(metadata[PREVIOUS_PACKAGE_KEY], metadata[PREVIOUS_MODEL_KEY])


def model_of(sagemaker: Any, package_arn: str) -> str:
    """The --model a live package was deployed with ("" if it records none)."""
    with aws_call(f"sagemaker:DescribeModelPackage {package_arn}", DeployError):
        return _metadata(sagemaker.describe_model_package(ModelPackageName=package_arn)).get(MODEL_KEY, "")


def _update(sagemaker: Any, arn: str, metadata: dict[str, str], remove: list[str]) -> None:
    with aws_call(f"sagemaker:DescribeModelPackage {arn}", DeployError):
        package = sagemaker.describe_model_package(ModelPackageName=arn)
    merged = {k: v for k, v in {**_metadata(package), **metadata}.items() if k not in remove}
    arguments: dict[str, Any] = {
        "ModelPackageArn": arn,
        # Sent again unchanged: some implementations (moto) reset a status the call leaves out.
        "ModelApprovalStatus": package["ModelApprovalStatus"],
        "CustomerMetadataProperties": merged,
    }
    if remove:
        arguments["CustomerMetadataPropertiesToRemove"] = remove
    with aws_call(f"sagemaker:UpdateModelPackage {arn}", DeployError):
        sagemaker.update_model_package(**arguments)


def record_live(sagemaker: Any, stack: str, live: LiveVersion, previous: LiveVersion | None) -> None:
    """The package (and MLflow version) the endpoint now serves marked live; the one before unmarked."""
    metadata = {LIVE_KEY: stack, MODEL_KEY: live.model[:256]}
    remove: list[str] = []
    if previous is not None and previous.package_arn != live.package_arn:
        metadata.update({PREVIOUS_PACKAGE_KEY: previous.package_arn, PREVIOUS_MODEL_KEY: previous.model[:256]})
        _update(sagemaker, previous.package_arn, {}, [LIVE_KEY])
    elif previous is None:
        remove = [PREVIOUS_PACKAGE_KEY, PREVIOUS_MODEL_KEY]
    _update(sagemaker, live.package_arn, metadata, remove)
    set_live_alias(live.model)


def set_live_alias(model: str) -> str | None:
    """Move the registered model's `live` alias to the version `model` names; the version, or None for a
    model directory (nothing in MLflow to mark)."""
    from kubesage.deploy.integrity import _MODELS_URI

    match = _MODELS_URI.fullmatch(model)
    if match is None:
        return None
    from mlflow.exceptions import MlflowException

    from kubesage.tracking import mlflow_client

    client = mlflow_client()
    try:
        version = match["version"] or client.get_model_version_by_alias(match["name"], match["alias"]).version
        client.set_registered_model_alias(match["name"], LIVE_ALIAS, str(version))
    except MlflowException as exc:
        raise DeployError(
            f"the endpoint serves {model}, but MLflow's alias {LIVE_ALIAS!r} could not be moved to it: {exc.message}"
        ) from exc
    return str(version)
