"""The SageMaker runner's AWS calls, against moto in server mode over HTTP on 127.0.0.1.

What moto can and cannot show (moto 5.2): it stores pipelines, executions and model package
groups, and serves S3 for real; but it has no ListPipelineExecutionSteps, and its executions are
"Succeeded" at once WITHOUT running any step. So these tests check the control plane (uploads,
create/update pipeline, start/describe execution, parameters, model package group), never that
steps ran; the SDK local-mode test covers execution.
"""

import json
from pathlib import Path

import boto3
import pytest

from kubesage.errors import RunnerError
from kubesage.runners.base import CallbackProgress
from kubesage.runners.registry import load_pipeline
from kubesage.runners.sagemaker.compiler import compile_spec
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.runner import SageMakerRunner
from kubesage.tracking import start_pipeline_run
from kubesage.util.boto_sessions import new_boto3_session
from tests.servers import fresh_sqlite_store

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "churn.txt"
REGION = "us-east-1"
BUCKET = "kubesage-moto"
ROLE = "arn:aws:iam::123456789012:role/kubesage-sagemaker-execution"


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, boto3.Session]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    session = new_boto3_session(region_name=REGION)
    s3 = session.client("s3", endpoint_url=moto_endpoint)
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if BUCKET not in existing:
        # The runner never creates buckets (least privilege); the account owner does, once.
        s3.create_bucket(Bucket=BUCKET)
    return moto_endpoint, session


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_sqlite_template: Path):  # type: ignore[no-untyped-def]
    uri = fresh_sqlite_store(mlflow_sqlite_template, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return start_pipeline_run("customer-churn", "sagemaker", {"seed": 42}, uri=uri)


PINNED_IMAGE = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/kubesage/xgboost-daal4py@sha256:{'0' * 64}"


def _config(**update: object) -> SageMakerConfig:
    config = SageMakerConfig(role_arn=ROLE, bucket=BUCKET, prefix="it", region=REGION, image_uri=PINNED_IMAGE)
    return config.model_copy(update=update)


def test_submit_uploads_upserts_and_starts(aws, tracking, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Create path: specs and the data file land in S3, the pipeline holds the compiled definition,
    the execution carries the run's parameters and MLflow parent run, the group exists.
    (moto marks the execution Succeeded immediately; no step runs.)"""
    endpoint, session = aws
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    runner = SageMakerRunner(_config(), endpoint_url=endpoint, poll_seconds=0.1)
    arn = runner.start(pipeline, {"input_data": str(DATA), "seed": 7, "max_depth": 4}, tracking)

    s3 = session.client("s3", endpoint_url=endpoint)
    sm = session.client("sagemaker", endpoint_url=endpoint)
    compiled = compile_spec(pipeline.spec, _config())
    for uri, body in compiled.assets.items():
        key = uri.removeprefix(f"s3://{BUCKET}/")
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body

    listed = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    params = {p["Name"]: p["Value"] for p in listed}
    staged = params["input_data"]
    assert staged.startswith(f"s3://{BUCKET}/it/customer-churn/inputs/") and staged.endswith("/churn.txt")
    uploaded = s3.get_object(Bucket=BUCKET, Key=staged.removeprefix(f"s3://{BUCKET}/"))["Body"].read()
    assert uploaded == DATA.read_bytes()

    described = sm.describe_pipeline(PipelineName="customer-churn")
    assert json.loads(described["PipelineDefinition"]) == compiled.definition
    assert described["RoleArn"] == ROLE

    execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert execution["PipelineArn"] == described["PipelineArn"]
    assert params["seed"] == "7" and params["max_depth"] == "4"
    assert params["KubesageMlflowParentRunId"] == tracking.run_id
    assert params["KubesageMlflowTrackingUri"] == tracking.tracking_uri

    group = sm.describe_model_package_group(ModelPackageGroupName="customer-churn-models")
    assert group["ModelPackageGroupName"] == "customer-churn-models"


def test_second_submit_updates_the_pipeline(aws, tracking, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Update path: a new image URI replaces the stored definition in place (same pipeline ARN)."""
    endpoint, session = aws
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    sm = session.client("sagemaker", endpoint_url=endpoint)
    first = SageMakerRunner(_config(), endpoint_url=endpoint).start(pipeline, {"input_data": str(DATA)}, tracking)
    pipeline_arn = sm.describe_pipeline(PipelineName="customer-churn")["PipelineArn"]
    # A tag is resolved to its digest through ECR (issue 18 item 4): the definition names the digest.
    ecr = session.client("ecr", endpoint_url=endpoint)
    repository = ecr.create_repository(repositoryName="kubesage/xgboost-daal4py")["repository"]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"digest": "sha256:" + "1" * 64, "size": 1}, "layers": []})  # fmt: skip
    digest = ecr.put_image(repositoryName="kubesage/xgboost-daal4py", imageManifest=manifest, imageTag="2")["image"][
        "imageId"
    ]["imageDigest"]
    image = f"{repository['repositoryUri']}:2"
    second = SageMakerRunner(_config(image_uri=image), endpoint_url=endpoint).start(
        pipeline, {"input_data": str(DATA)}, tracking
    )
    described = sm.describe_pipeline(PipelineName="customer-churn")
    assert described["PipelineArn"] == pipeline_arn
    assert f"{repository['repositoryUri']}@{digest}" in described["PipelineDefinition"]
    assert image not in described["PipelineDefinition"]
    assert first != second


def test_follow_reports_terminal_status_without_step_list(aws, tracking, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """moto lacks ListPipelineExecutionSteps: `follow` must still finish from the execution status alone,
    with no step lines (the step list is exercised only on real SageMaker)."""
    endpoint, _ = aws
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    runner = SageMakerRunner(_config(), endpoint_url=endpoint, poll_seconds=0.1, timeout_seconds=30)
    arn = runner.start(pipeline, {"input_data": str(DATA)}, tracking)
    messages: list[str] = []
    runner.follow(arn, CallbackProgress(messages.append))  # raises unless the execution Succeeded
    assert messages[0] == f"following SageMaker pipeline execution {arn}"
    assert messages[1].startswith("step status unavailable: AWS refused sagemaker:ListPipelineExecutionSteps")
    assert len(messages) == 2


def test_missing_input_file_and_missing_bucket_are_clear_errors(aws, tracking, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    endpoint, _ = aws
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    runner = SageMakerRunner(_config(), endpoint_url=endpoint)
    with pytest.raises(RunnerError, match="parameter 'input_data': '/nope.csv' is neither an s3:// URI"):
        runner.start(pipeline, {"input_data": "/nope.csv"}, tracking)
    other = SageMakerRunner(_config(bucket="kubesage-no-such-bucket"), endpoint_url=endpoint)
    with pytest.raises(RunnerError, match="AWS refused s3:PutObject .*NoSuchBucket"):
        other.start(pipeline, {"input_data": str(DATA)}, tracking)


def test_tracking_uri_with_a_password_never_becomes_a_parameter() -> None:
    from kubesage.errors import RunnerError
    from kubesage.runners.sagemaker.base import handoff_parameters
    from kubesage.tracking import PipelineRun

    for uri in ("https://user:secret@mlflow.example.com", "https://mlflow.example.com/?token=abc"):
        tracking = PipelineRun("run", "1", uri, "sagemaker")
        with pytest.raises(RunnerError, match="carries a credential"):
            handoff_parameters(tracking)


def test_a_mutable_tag_outside_ecr_is_refused_before_anything_is_uploaded(aws, tracking, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 18 item 4: the shim that checks the specs lives in the image, so the image is pinned."""
    endpoint, session = aws
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    runner = SageMakerRunner(
        _config(image_uri="kubesage/xgboost-daal4py:latest", prefix="refused"), endpoint_url=endpoint
    )
    with pytest.raises(
        RunnerError, match=r"'kubesage/xgboost-daal4py:latest' is a mutable tag outside ECR; pass --image"
    ):
        runner.start(pipeline, {"input_data": str(DATA)}, tracking)
    listed = session.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=BUCKET, Prefix="refused/")
    assert listed.get("KeyCount", 0) == 0
