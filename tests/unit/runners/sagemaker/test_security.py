"""Security options of the SageMaker compiler (issue 10, items 6, 8, 9, 16): every job, every step.

Offline: the definitions are compiled with the SDK and read as JSON, the way SageMaker receives them.
"""

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler, dsl

from kubesage.errors import ParameterError
from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.naming import sagemaker_pipeline_name
from kubesage.runners.sagemaker.pinning import refuse_pinned
from tests.paths import TESTS_DIR
from tests.unit.runners.sagemaker.ir_file import compile_file

GOLDEN = TESTS_DIR / "golden" / "sagemaker"
SECURE = SageMakerConfig(
    role_arn="arn:aws:iam::123456789012:role/kubesage-sagemaker-pipeline",
    job_role_arn="arn:aws:iam::123456789012:role/kubesage-sagemaker-job",
    bucket="kubesage-golden",
    subnets=("subnet-0a1b2c3d", "subnet-0e1f2a3b"),
    security_group_ids=("sg-0a1b2c3d",),
    enable_network_isolation=True,
    volume_kms_key="arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-1111-2222-333344445555",
    output_kms_key="alias/kubesage-outputs",
    encrypt_inter_container_traffic=True,
    data_parameters=("input_data",),
)


def _ir(function: Any, tmp_path: Path) -> Path:
    target = tmp_path / f"{function.name}.yaml"
    compiler.Compiler().compile(function, str(target))
    return target


def _toy(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, GOLDEN / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _churn() -> Any:
    from kubesage.pipelines.customer_churn import customer_churn

    return customer_churn


def _all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, including those nested in ConditionStep branches."""
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from _all_steps(step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []))


def _jobs(compiled: CompiledPipeline) -> dict[str, dict[str, Any]]:
    return {s["Name"]: s for s in _all_steps(compiled.definition["Steps"]) if s["Type"] in ("Processing", "Training")}


@pytest.fixture(scope="module")
def churn_secure(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    return compile_file(_ir(_churn(), tmp_path_factory.mktemp("churn")), SECURE)


def test_every_job_carries_the_vpc_isolation_and_keys(churn_secure: CompiledPipeline) -> None:
    jobs = _jobs(churn_secure)
    assert sorted(jobs) == ["evaluate", "preprocess", "register", "report-not-registered", "train"]
    for name, step in jobs.items():
        args = step["Arguments"]
        assert args["RoleArn"] == SECURE.job_role_arn, name
        if step["Type"] == "Processing":
            network = args["NetworkConfig"]
            assert network["VpcConfig"] == {"Subnets": list(SECURE.subnets), "SecurityGroupIds": ["sg-0a1b2c3d"]}
            assert network["EnableNetworkIsolation"] is True
            assert network["EnableInterContainerTrafficEncryption"] is True
            assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == SECURE.volume_kms_key
            outputs = args["ProcessingOutputConfig"]
            assert outputs["KmsKeyId"] == "alias/kubesage-outputs", name
        else:
            assert args["VpcConfig"] == {"Subnets": list(SECURE.subnets), "SecurityGroupIds": ["sg-0a1b2c3d"]}
            assert args["EnableNetworkIsolation"] is True
            assert args["EnableInterContainerTrafficEncryption"] is True
            assert args["ResourceConfig"]["VolumeKmsKeyId"] == SECURE.volume_kms_key
            assert args["OutputDataConfig"]["KmsKeyId"] == "alias/kubesage-outputs"
    assert any("network-isolated" in line for line in churn_secure.report)


def test_without_options_no_job_carries_network_settings(tmp_path: Path) -> None:
    compiled = compile_file(_ir(_toy("toy_threshold"), tmp_path), SageMakerConfig())
    for step in _jobs(compiled).values():
        assert "NetworkConfig" not in step["Arguments"] and "VpcConfig" not in step["Arguments"]
        assert step["Arguments"]["RoleArn"] == SageMakerConfig().role_arn


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"subnets": ("subnet-0a1b2c3d",)}, "needs both subnets and security_group_ids"),
        ({"subnets": ("vpc-1",), "security_group_ids": ("sg-0a1b2c3d",)}, "not VPC subnet ids"),
        ({"volume_kms_key": "my key"}, "not a KMS key"),
        ({"job_role_arn": "kubesage-job"}, "not an IAM role ARN"),
    ],
)
def test_bad_security_options_name_the_problem(update: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SageMakerConfig(**update)


# ---- pinned parameters (item 9) ----------------------------------------------------------------


def test_pinned_parameters_are_constants_not_execution_parameters(tmp_path: Path) -> None:
    pins = {"ModelApprovalStatus": "PendingManualApproval", "min_accuracy": "0.9"}
    compiled = compile_file(_ir(_churn(), tmp_path), SECURE.model_copy(update={"pinned_parameters": pins}))
    names = {p["Name"] for p in compiled.definition["Parameters"]}
    assert "ModelApprovalStatus" not in names and "min_accuracy" not in names
    text = compiled.definition_json()
    assert "Parameters.min_accuracy" not in text and "Parameters.ModelApprovalStatus" not in text
    (package,) = [s for s in _all_steps(compiled.definition["Steps"]) if s["Type"] == "RegisterModel"]
    assert package["Arguments"]["ModelApprovalStatus"] == "PendingManualApproval"
    gate = next(s for s in _all_steps(compiled.definition["Steps"]) if s.get("DisplayName") == "accuracy-gate")
    assert gate["Arguments"]["Conditions"][0]["RightValue"] == 0.9
    # A pinned value cannot be overridden at run time either.
    with pytest.raises(ParameterError, match="min_accuracy are pinned"):
        refuse_pinned(compiled.pinned, {"min_accuracy": 0.1})


def test_unpinned_they_stay_parameters_and_the_report_says_who_can_set_them(tmp_path: Path) -> None:
    compiled = compile_file(_ir(_churn(), tmp_path), SECURE)
    names = {p["Name"] for p in compiled.definition["Parameters"]}
    assert {"ModelApprovalStatus", "min_accuracy"} <= names
    assert any("anyone who may start the pipeline may set it" in line for line in compiled.report)


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        ({"ModelApprovalStatus": "Yes"}, "must be one of Approved, Rejected, PendingManualApproval"),
        ({"min_acuracy": 0.9}, r"cannot pin \['min_acuracy'\]"),
        ({"input_data": "s3://b/k"}, "cannot pin data parameters"),
        ({"min_accuracy": "high"}, "pinned parameter 'min_accuracy'"),
    ],
)
def test_bad_pins_are_refused(pins: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=message):
        compile_file(_ir(_churn(), tmp_path), SECURE.model_copy(update={"pinned_parameters": pins}))


# ---- names and prefixes (item 16) --------------------------------------------------------------


def test_pipeline_names_that_differ_in_kfp_differ_on_sagemaker() -> None:
    assert sagemaker_pipeline_name("customer-churn") == "customer-churn"
    underscored = sagemaker_pipeline_name("customer_churn")
    assert underscored != "customer-churn" and underscored.startswith("customer-churn-")
    assert sagemaker_pipeline_name("customer churn") != underscored
    assert sagemaker_pipeline_name("customer_churn") == underscored  # stable
    long = sagemaker_pipeline_name("x_" * 200)
    assert len(long) <= 256


@dsl.component(base_image="python:3.11")
def _two_outputs(train: dsl.Output[dsl.Dataset], train_data: dsl.Output[dsl.Dataset]) -> None:
    pass


@dsl.component(base_image="python:3.11")
def _read(train: dsl.Input[dsl.Dataset]) -> None:
    pass


@dsl.pipeline(name="prefix-siblings")
def _siblings() -> None:
    made = _two_outputs()
    _read(train=made.outputs["train"])


def test_an_artifact_input_is_its_output_folder_not_a_key_prefix(tmp_path: Path) -> None:
    compiled = compile_file(_ir(_siblings, tmp_path), SageMakerConfig())
    (read,) = [s for s in compiled.definition["Steps"] if s["Name"] == "read"]
    (channel,) = [i for i in read["Arguments"]["ProcessingInputs"] if i["InputName"] == "train"]
    uri = channel["S3Input"]["S3Uri"]["Std:Join"]
    # .../two-outputs/train/ cannot match .../two-outputs/train_data/...
    assert uri["On"] == "" and uri["Values"][-1] == "/"
    assert json.dumps(uri["Values"][0]).count("Outputs['train']") == 1
