"""What every step builder reads: the plan, the config, the SDK parameters and the steps built so far.

SageMaker wires steps together by reference (a step property, a PropertyFile JsonGet, a pipeline
parameter), so a step can only be built after the steps it reads: `steps` and `property_files`
fill up in dependency order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.ir import (
    ArtifactSource,
    ImportedArtifact,
    ParamSource,
    PipelineParam,
    PipelinePlan,
    TaskOutputParam,
    TaskPlan,
)
from kubesage.runners.sagemaker.platform import TaskPlatform


@dataclass
class BuildContext:
    plan: PipelinePlan
    config: SageMakerConfig
    session: Any
    name: str  # the SageMaker pipeline's name
    parameters: dict[str, Any]  # SDK Parameter* objects by name
    data_parameters: tuple[str, ...]
    steps: dict[str, Any] = field(default_factory=dict)
    # step key -> what its job gets from kfp-kubernetes settings (secrets by name, ConfigMap values)
    platform: dict[str, TaskPlatform] = field(default_factory=dict)
    property_files: dict[str, Any] = field(default_factory=dict)

    def channel_artifacts(self, task: TaskPlan) -> dict[str, ArtifactSource]:
        """The input artifacts SageMaker downloads into the job: all but the URLs the shim fetches."""
        return {
            name: source
            for name, source in task.artifacts.items()
            if not (isinstance(source, ImportedArtifact) and source.fetched)
        }

    def run_prefix(self, task: str) -> Any:
        """`<s3 root>/<pipeline>/runs/<execution id>/<task>`: where a task's outputs go."""
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        return Join(
            on="/",
            values=[f"{self.config.s3_root()}/{self.name}/runs", ExecutionVariables.PIPELINE_EXECUTION_ID, task],
        )

    def output_parameter(self, source: TaskOutputParam) -> Any:
        """An upstream processing task's output parameter, read from its outputs.json."""
        from sagemaker.core.workflow.functions import JsonGet

        return JsonGet(
            step_name=source.task,
            property_file=self.property_files[source.task],
            json_path=f"parameters.{source.key}",
        )

    def parameter_value(self, task: str, source: ParamSource) -> Any:
        """A runtime parameter value as text on `task`'s command line (constants go in the task spec)."""
        if isinstance(source, PipelineParam):
            return self.parameters[source.name].to_string()
        if isinstance(source, TaskOutputParam):
            if self.plan.tasks[source.task].kind != "processing":
                raise UnsupportedFeatureError(
                    f"task '{task}': reads output parameter '{source.key}' of training task '{source.task}' "
                    "(a training job has no PropertyFile); return it from a separate step"
                )
            return self.output_parameter(source).to_string()
        raise AssertionError(f"constants are written into the task spec, not {source}")

    def artifact_uri(self, source: ArtifactSource) -> Any:
        """The S3 URI an input artifact is downloaded from: an import, or an upstream step's output."""
        from sagemaker.core.workflow.functions import Join

        if isinstance(source, ImportedArtifact):
            if isinstance(source.uri, PipelineParam):
                return self.parameters[source.uri.name]
            if isinstance(source.uri, TaskOutputParam):
                # a URI another task computed: read from its outputs.json when the step starts
                return self.output_parameter(source.uri)
            return str(source.uri.value)
        producer = self.steps[source.task]
        if self.plan.tasks[source.task].kind == "training":
            return producer.properties.ModelArtifacts.S3ModelArtifacts
        # The trailing '/' keeps the S3Prefix input to this output's folder: without it, output
        # `train` would also download a sibling output `train_data`.
        uri = producer.properties.ProcessingOutputConfig.Outputs[source.key].S3Output.S3Uri
        return Join(on="", values=[uri, "/"])
