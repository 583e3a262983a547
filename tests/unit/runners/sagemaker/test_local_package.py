"""The RegisterModel step's request resolved against a local-mode execution (runners/sagemaker/local_package.py)."""

from __future__ import annotations

import pytest

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker.local_package import ExecutionValues, model_data_url, resolve

ARN = "execution-3f2a"
VALUES = ExecutionValues(
    execution_arn=ARN,
    parameters={"ModelApprovalStatus": "Approved"},
    step_properties={"train": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/runs/x/train/model.tar.gz"}}},
)


def test_every_expression_the_step_holds_takes_the_execution_s_value() -> None:
    request = {
        "ModelPackageGroupName": "g",
        "ModelApprovalStatus": {"Get": "Parameters.ModelApprovalStatus"},
        "InferenceSpecification": {
            "Containers": [{"Image": "img", "ModelDataUrl": {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}}],
            "SupportedContentTypes": ["text/csv"],
        },
        "CustomerMetadataProperties": {
            "kubesage:execution": {"Get": "Execution.PipelineExecutionArn"},
            "joined": {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}]}},
        },
    }
    resolved = resolve(request, VALUES)
    assert resolved == {
        "ModelPackageGroupName": "g",
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [{"Image": "img", "ModelDataUrl": "s3://b/runs/x/train/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
        },
        "CustomerMetadataProperties": {"kubesage:execution": ARN, "joined": f"s3://b/{ARN}"},
    }
    assert model_data_url(resolved) == "s3://b/runs/x/train/model.tar.gz"


@pytest.mark.parametrize(
    "path", ["Steps.train.ModelArtifacts.Missing", "Steps.evaluate.ModelArtifacts.S3ModelArtifacts", "Parameters.X"]
)
def test_a_reference_the_execution_did_not_record_is_refused_in_one_line(path: str) -> None:
    with pytest.raises(RunnerError) as refused:
        resolve({"ModelDataUrl": {"Get": path}}, VALUES)
    message = str(refused.value)
    assert "\n" not in message
    assert message == f"the model package request reads {path}, which execution {ARN} did not record"
