"""SageMaker Pipelines backend: compile KFP IR to a SageMaker pipeline definition, then run it on
SageMaker (`sagemaker`) or in the SageMaker SDK's local mode with Docker (`sagemaker-local`)."""

from __future__ import annotations

from pydantic import Field

from kubesage.runners.base import OnExit
from kubesage.runners.registry import RunnerSpec
from kubesage.runners.sagemaker.config import SageMakerConfig


class SageMakerOptions(SageMakerConfig):
    endpoint_url: str | None = Field(default=None, description="SageMaker API endpoint (a stand-in such as moto)")
    poll_seconds: float = Field(default=15.0, gt=0, description="seconds between status polls")
    timeout_seconds: float = Field(default=6 * 3600, gt=0, description="give up following after this long")
    on_exit: OnExit = Field(
        default="stop",
        description="on timeout or Ctrl-C: stop the execution, or leave it running and say how to follow it",
    )


class SageMakerLocalOptions(SageMakerConfig):
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint for local mode (e.g. moto)")
    endpoint_url: str | None = Field(
        default=None,
        description="SageMaker API endpoint the model package is registered at after the run (a stand-in "
        "such as moto; default: boto3's, i.e. AWS or $AWS_ENDPOINT_URL)",
    )
    model_package: bool = Field(
        default=True,
        description="after the steps ran, make the model package the RegisterModel step makes on SageMaker "
        "(local mode cannot run that step); false: the MLflow registration only",
    )
    telemetry: bool = Field(
        default=False,
        description="let the SageMaker SDK send its usage telemetry to AWS (off unless this or your SDK config "
        "sets TelemetryOptOut: false)",
    )


RUNNERS = (
    RunnerSpec(
        name="sagemaker",
        runner="kubesage.runners.sagemaker.runner:SageMakerRunner",
        options=SageMakerOptions,
        summary="SageMaker Pipelines: the IR compiled to SageMaker steps on the kubesage image",
        needs="an AWS account: image in ECR, execution role, bucket; an MLflow server the jobs reach",
        extra="sagemaker",
        compile_target="sagemaker",
    ),
    RunnerSpec(
        name="sagemaker-local",
        runner="kubesage.runners.sagemaker.local_mode:SageMakerLocalRunner",
        options=SageMakerLocalOptions,
        summary="the same SageMaker definition run by the SageMaker SDK's local mode in Docker",
        needs="Docker, the kubesage image, S3 (moto works), an MLflow server on this host",
        extra="sagemaker",
    ),
)
