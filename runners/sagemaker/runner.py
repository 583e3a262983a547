"""The SageMaker backend: compile offline, upload the task specs and inputs, upsert, start, follow.

`start` compiles the IR (no AWS), uploads the task specs and any local input files to S3, creates or
updates the pipeline, makes sure the model package group exists, and starts an execution with the
run's parameters plus the MLflow hand-off, so every step joins the parent run. `follow` polls the
execution and reports step status changes. On a timeout or Ctrl-C the execution is stopped (or, with
`on_exit=detach`, left running with the command that follows it), and the parent run says which.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kubesage.errors import RunInterruptedError, RunnerError
from kubesage.ir.parameters import parameter_text
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import Progress, RunContext
from kubesage.runners.sagemaker import SageMakerOptions
from kubesage.runners.sagemaker.base import SageMakerRunnerBase, check_credentials_reach_steps, stage_data_parameters
from kubesage.runners.sagemaker.client import FollowTimeoutError, SageMakerClient
from kubesage.runners.sagemaker.image import is_pinned, pinned_image
from kubesage.runners.sagemaker.preflight import AwsClients, preflight
from kubesage.tracking import PipelineRun, tracking_uri


class SageMakerRunner(SageMakerRunnerBase):
    """Runs the compiled pipeline on SageMaker Pipelines (or any endpoint speaking its API)."""

    name = "sagemaker"
    Options = SageMakerOptions
    options: SageMakerOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: SageMakerClient | None = None

    @property
    def client(self) -> SageMakerClient:
        if self._client is None:
            self._client = SageMakerClient.create(self.options.region, self.options.endpoint_url)
        return self._client

    def preflight(self, pipeline: PipelineSource, parameters: Mapping[str, Any]) -> None:
        """Credentials, region, role, bucket, image and tracking URI, before anything is recorded."""
        check_credentials_reach_steps(os.environ, self.options.mlflow_secret)
        clients = AwsClients.create(self.options.region, self.options.endpoint_url)
        pinned = preflight(self.options, clients, tracking_uri())
        if pinned != self.options.image_uri:
            self.options = self.options.model_copy(update={"image_uri": pinned})
            self._compiled.clear()

    def input_endpoint(self) -> str | None:
        # The runner's S3 calls (staging, task specs) go through the same endpoint as its SageMaker calls.
        return self.options.endpoint_url

    def start(self, pipeline: PipelineSource, parameters: Mapping[str, Any], tracking: PipelineRun) -> str:
        """Upload, upsert and start an execution; returns its ARN."""
        client = self.client
        self._pin_image(client)
        compiled = self.compiled(pipeline)
        client.upload_assets(compiled.assets)
        staged = stage_data_parameters(compiled, parameters, client, self.options.s3_root())
        client.upsert_pipeline(compiled.name, compiled.definition_json(), self.options.role_arn, pipeline.description)
        if compiled.model_package_group:
            client.ensure_model_package_group(compiled.model_package_group)
        values = {name: parameter_text(v) for name, v in self.run_parameters(staged, tracking).items()}
        return client.start_execution(compiled.name, values)

    def _pin_image(self, client: SageMakerClient) -> None:
        """Name the step image by digest in the definition: resolve an ECR tag, refuse any other tag."""
        if is_pinned(self.options.image_uri):
            return
        pinned = pinned_image(self.options.image_uri, client.ecr())
        self.options = self.options.model_copy(update={"image_uri": pinned})
        self._compiled.clear()  # compiled with the tag: compile again with the digest

    def follow(self, execution_arn: str, progress: Progress) -> None:
        """Block until the execution ends; raise with SageMaker's reason if it did not succeed."""
        progress.info(f"following SageMaker pipeline execution {execution_arn}")
        described = self.client.wait(execution_arn, progress, self.options.poll_seconds, self.options.timeout_seconds)
        status = described["PipelineExecutionStatus"]
        if status != "Succeeded":
            reason = described.get("FailureReason") or "see the failed step in SageMaker Studio"
            raise RunnerError(f"SageMaker pipeline execution {execution_arn} ended {status}: {reason}")

    def _run(self, context: RunContext) -> None:
        arn = self.start(context.pipeline, context.parameters, context.tracking)
        context.record_backend_run(arn)
        try:
            self.follow(arn, context.progress)
        except FollowTimeoutError as exc:
            raise self._leave(arn, f"not finished after {self.options.timeout_seconds:.0f} s", context) from exc
        except KeyboardInterrupt as exc:
            raise self._leave(arn, "interrupted (Ctrl-C)", context) from exc

    def _leave(self, arn: str, why: str, context: RunContext) -> RunInterruptedError:
        """Stop the execution (or leave it running) and say which: the parent run must tell the truth."""
        follow = f"aws sagemaker describe-pipeline-execution --pipeline-execution-arn {arn}"
        if self.options.on_exit == "detach":
            return RunInterruptedError(
                f"{why}; execution {arn} keeps running on SageMaker and may still register a model. "
                f"Follow it with `{follow}`"
            )
        self.client.stop_execution(arn)
        context.progress.info(f"stopping execution {arn}")
        return RunInterruptedError(
            f"{why}; execution {arn} was asked to stop (pass --option on_exit=detach to leave it running). "
            f"Check with `{follow}`"
        )
