"""Pipeline parameters: the KFP parameters as SDK Parameter* objects, plus the ones kubesage adds.

KFP's typed parameters map one to one; lists and dicts travel as JSON text in a ParameterString
(the shim decodes them to the declared type). kubesage adds the MLflow hand-off (per run, so one
definition serves every run) and, for a registering pipeline, the model approval status.
"""

from __future__ import annotations

import json
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.ir.inputs import is_data_folder_parameter, is_data_parameter
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import JSON_TYPES, PipelinePlan
from kubesage.tracking.contract import ENV_EXPERIMENT_ID, ENV_PARENT_RUN_ID, ENV_TRACKING_URI
from kubesage.util.redact import redact_uri, uri_credentials

APPROVAL_PARAMETER = "ModelApprovalStatus"
DEFAULT_APPROVAL = "PendingManualApproval"
# Per-run tracking values: parameters, so one pipeline definition serves every run.
TRACKING_PARAMETERS = {
    "KubesageMlflowTrackingUri": ENV_TRACKING_URI,
    "KubesageMlflowParentRunId": ENV_PARENT_RUN_ID,
    "KubesageMlflowExperimentId": ENV_EXPERIMENT_ID,
}
_TRACKING_URI_PARAMETER = "KubesageMlflowTrackingUri"
# The SDK class (in sagemaker.core.workflow.parameters) for each KFP parameter type; any other
# type (LIST, STRUCT) is a ParameterString holding JSON.
SDK_PARAMETER_CLASSES = {
    "STRING": "ParameterString",
    "NUMBER_INTEGER": "ParameterInteger",
    "NUMBER_DOUBLE": "ParameterFloat",
    "BOOLEAN": "ParameterBoolean",
}


def data_parameters(plan: PipelinePlan, config: SageMakerConfig) -> tuple[str, ...]:
    """Parameters that carry input data (an S3 URI at run time) rather than a plain value."""
    if config.data_parameters is not None:
        return tuple(config.data_parameters)
    return tuple(
        name
        for name, param in plan.parameters.items()
        if param.type == "STRING"
        and param.artifact_type is None
        and (is_data_parameter(name) or is_data_folder_parameter(name))
    )


def checked_data_parameters(plan: PipelinePlan, config: SageMakerConfig) -> tuple[str, ...]:
    """`data_parameters`, refusing a configured name that is not a string parameter of the pipeline."""
    names = data_parameters(plan, config)
    for name in names:
        if plan.parameters.get(name) is None or plan.parameters[name].type != "STRING":
            raise UnsupportedFeatureError(
                f"data parameter '{name}' is not a string parameter of pipeline '{plan.name}'"
            )
    return names


def sdk_parameters(plan: PipelinePlan, config: SageMakerConfig) -> dict[str, Any]:
    """The pipeline's own parameters and the MLflow hand-off, as SDK Parameter* objects by name."""
    from sagemaker.core.workflow import parameters as sdk

    parameters: dict[str, Any] = {}
    for name, param in plan.parameters.items():
        if param.type in JSON_TYPES:
            cls, default = sdk.ParameterString, json.dumps(param.default)
        else:
            cls, default = getattr(sdk, SDK_PARAMETER_CLASSES[param.type]), param.default
        parameters[name] = cls(name=name, default_value=default) if param.has_default else cls(name=name)
    clash = sorted({APPROVAL_PARAMETER, *TRACKING_PARAMETERS} & set(parameters))
    if clash:
        raise UnsupportedFeatureError(f"pipeline parameters {clash} clash with names kubesage reserves")
    for name in sorted(TRACKING_PARAMETERS):
        default = config.mlflow_tracking_uri if name == _TRACKING_URI_PARAMETER else ""
        if uri_credentials(default):  # a parameter default is stored in the pipeline definition
            raise UnsupportedFeatureError(
                f"the MLflow tracking URI {redact_uri(default)} carries a credential; a pipeline definition is "
                "not secret: give the steps MLFLOW_TRACKING_TOKEN (or USERNAME/PASSWORD) through secrets"
            )
        parameters[name] = sdk.ParameterString(name=name, default_value=default)
    return parameters


def approval_parameter() -> Any:
    """The execution parameter a RegisterModel step's approval status reads, unless it is pinned."""
    from sagemaker.core.workflow.parameters import ParameterString

    return ParameterString(name=APPROVAL_PARAMETER, default_value=DEFAULT_APPROVAL)
