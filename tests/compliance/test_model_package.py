"""sagemaker-local -> `kubesage approve` -> `kubesage deploy`, on the suite's own sagemaker-local churn run.

Why here: the package is made by the sagemaker-local runner after local mode ran the steps, so the
compliance suite's one sagemaker-local churn run (conftest.py) has already made it; this test only
reads that run and adds the approve and deploy the laptop path exists for. No second local-mode run.

What stands in for AWS: moto in server mode (the suite's `compliance_moto`, over HTTP) is local mode's
S3, the SageMaker control plane the package is registered at and approved in, and CloudFormation,
Lambda, IAM and API Gateway for the deploy. moto 5.2 creates the stack's SageMaker Model,
EndpointConfig and Endpoint, which is what is asserted; it silently skips the API's Stage, ApiKey,
UsagePlan and the CloudWatch alarms (asserted from the rendered template in
tests/integration/test_api_deploy_moto.py and test_api_rollout_moto.py, not here), and never starts
the image behind the endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from kubesage.churn.modelio import TAG_MODEL_SHA256
from kubesage.cli import main
from kubesage.deploy.integrity import artifact_sha256
from kubesage.ir.source import PipelineSource
from kubesage.runners.sagemaker.compiler import compile_spec
from kubesage.runners.sagemaker.config import SageMakerConfig
from tests.compliance.conftest import BUCKET, IMAGE, CompletedRun
from tests.integration.deploy_helpers import aws_against_moto

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
LOCAL_ONLY = [pytest.param("sagemaker-local", marks=pytest.mark.container, id="sagemaker-local")]


def _register_model_arguments(pipeline: PipelineSource) -> dict[str, Any]:
    """The RegisterModel step's arguments in the definition compiled for SageMaker (not local mode)."""
    definition = compile_spec(
        pipeline.spec, SageMakerConfig(image_uri=IMAGE, bucket=BUCKET, prefix="compliance")
    ).definition

    def walk(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = [s for s in steps if s["Type"] == "RegisterModel"]
        for step in steps:
            if step["Type"] == "Condition":
                found += walk(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])
        return found

    (step,) = walk(definition["Steps"])
    arguments: dict[str, Any] = step["Arguments"]
    return arguments


@pytest.mark.parametrize("case", LOCAL_ONLY, indirect=True)
def test_the_local_run_s_model_package_is_approved_and_deployed(
    churn_run: CompletedRun,
    churn_pipeline: PipelineSource,
    compliance_moto: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = churn_run.result
    assert result.succeeded, result.failure
    arn = result.model_package_arn
    assert arn is not None and ":model-package/customer-churn-models/" in arn
    aws = aws_against_moto(compliance_moto, monkeypatch, REGION, BUCKET, ROLE)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", churn_run.tracking_uri)
    monkeypatch.chdir(tmp_path)  # deploy writes the Lambda zip under ./build
    sagemaker = aws.client("sagemaker")

    # The request the RegisterModel step makes on SageMaker, its references resolved in this execution.
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    expected = _register_model_arguments(churn_pipeline)
    assert expected["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelPackageGroupName"] == expected["ModelPackageGroupName"] == "customer-churn-models"
    container = package["InferenceSpecification"]["Containers"][0]
    model_data_url = container["ModelDataUrl"]
    spec = expected["InferenceSpecification"]
    assert spec["Containers"][0]["ModelDataUrl"] == {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}
    spec["Containers"][0]["ModelDataUrl"] = model_data_url
    assert {key: package["InferenceSpecification"][key] for key in spec} == spec
    assert container["Image"] == IMAGE
    assert model_data_url.startswith(f"s3://{BUCKET}/compliance/customer-churn/runs/{result.backend_id}/train/model/")
    assert model_data_url.endswith("/output/model.tar.gz")
    metadata = expected["CustomerMetadataProperties"]
    assert metadata["kubesage:execution"] == {"Get": "Execution.PipelineExecutionArn"}
    assert package["CustomerMetadataProperties"] == {**metadata, "kubesage:execution": result.backend_id}
    # The artifact it names is the model the register step recorded in MLflow, byte for byte.
    version = MlflowClient(churn_run.tracking_uri).get_model_version(
        "customer-churn", str(result.registered_model_version)
    )
    digest = version.tags[TAG_MODEL_SHA256]
    assert artifact_sha256(aws.client("s3"), model_data_url) == digest
    # One package of this execution: the group is shared with the suite's other sagemaker-local runs
    # (the 2-instance run of tests/compliance/test_distributed.py registers there too).
    summaries = sagemaker.list_model_packages(ModelPackageGroupName="customer-churn-models")["ModelPackageSummaryList"]
    made_here = [
        s["ModelPackageArn"]
        for s in summaries
        if sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])["CustomerMetadataProperties"].get(
            "kubesage:execution"
        )
        == result.backend_id
    ]
    assert made_here == [arn]

    cli = CliRunner()
    approved = cli.invoke(main, ["approve", arn, "--region", REGION, "--output", "json"])
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout) == {"model_package": arn, "status": "Approved"}
    assert sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"] == {
        **metadata,
        "kubesage:execution": result.backend_id,
    }

    model = f"models:/customer-churn/{result.registered_model_version}"
    deployed = cli.invoke(
        main,
        ["deploy", "--model-package", arn, "--model", model, "--execution-role", ROLE, "--bucket", BUCKET,
         "--region", REGION, "--stack-name", "churn-local", "--output", "json"],
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed.output
    report = json.loads(deployed.stdout)
    assert report["status"] == "CREATE_COMPLETE" and report["serving_package"] == arn
    endpoint = sagemaker.describe_endpoint(EndpointName=report["endpoint_name"])
    assert endpoint["EndpointConfigName"] == report["endpoint_config"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    served = sagemaker.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    # The endpoint serves this package, whose model data is the local run's artifact, checked by digest.
    assert served["ModelPackageName"] == arn
    assert served["Environment"] == {"KUBESAGE_MODEL_SHA256": digest}
    assert sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
