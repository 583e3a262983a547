"""The two SDK step classes kubesage extends, defined on first use.

They subclass SDK classes, and `import sagemaker.mlops` needs the offline environment
(`session.offline_env`), so they are created inside the compile, once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class StepClasses:
    shim_training: Any
    register_model_package: Any


@cache
def step_classes() -> StepClasses:
    from sagemaker.core.workflow.properties import Properties
    from sagemaker.mlops.workflow.steps import Step, StepTypeEnum, TrainingStep

    class ShimTrainingStep(TrainingStep):
        """A TrainingStep whose container runs the shim.

        ModelTrainer only sets ContainerEntrypoint together with SDK-managed source code, and
        validates `environment` as plain strings; the shim needs its own entrypoint and pipeline
        variables (parameters, the execution ARN) in the environment, so they are added here.
        """

        shim_overrides: dict[str, Any]

        @property
        def arguments(self) -> dict[str, Any]:
            request: dict[str, Any] = super().arguments
            overrides = self.shim_overrides
            spec = request.setdefault("AlgorithmSpecification", {})
            spec["ContainerEntrypoint"] = overrides["ContainerEntrypoint"]
            spec["ContainerArguments"] = overrides["ContainerArguments"]
            request["Environment"] = overrides["Environment"]
            request.setdefault("OutputDataConfig", {})["S3OutputPath"] = overrides["S3OutputPath"]
            request.pop("HyperParameters", None)
            return request

    class RegisterModelPackageStep(Step):
        """A RegisterModel step from a plain CreateModelPackage request.

        `ModelBuilder.register()` would do the same but uploads code and creates the default
        bucket while building, which needs AWS; this keeps compile offline.
        """

        def __init__(self, name: str, request: dict[str, Any], depends_on: list[str], display_name: str) -> None:
            super().__init__(name, display_name, None, StepTypeEnum.REGISTER_MODEL, depends_on)
            self.request = request
            self._properties = Properties(step_name=name, step=self, shape_name="DescribeModelPackageOutput")

        @property
        def arguments(self) -> dict[str, Any]:
            return self.request

        @property
        def properties(self) -> Any:
            return self._properties

    return StepClasses(shim_training=ShimTrainingStep, register_model_package=RegisterModelPackageStep)
