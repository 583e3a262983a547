"""Compile a KFP IR (PipelineSpec) into a SageMaker Pipelines definition with the SDK v3. Offline.

Every task runs the configured image through the shim (`shim.py`), which rebuilds KFP's executor
input from SageMaker's paths and runs the component's own command. The component's command and
constants travel in a per-task JSON "task spec" uploaded to S3 (`CompiledPipeline.assets`).

Modules, in the order a compile uses them:
- `pipeline`: the entry points (`compile_spec`, `build_pipeline`) and `CompiledPipeline`
- `session`: the SDK driven offline (placeholder credentials, telemetry and role validation off)
- `parameters`: KFP parameters as SDK parameters, plus the MLflow hand-off and approval status
- `order`: data dependencies and the order steps are built in
- `context`: what a step reads from the pipeline built so far (parameters, upstream steps)
- `taskspec`: what the shim gets (task spec, command line, environment); `layout`: container paths
- `steps`: Processing/Training steps; `register`: the RegisterModel step; `sdk_steps`: the SDK
  step classes kubesage extends
- `conditions`: dsl.If/Elif/Else -> nested ConditionSteps
- `explain`: the `compile --explain` report
"""

from kubesage.runners.sagemaker.compiler.layout import OUTPUTS_FILE, OUTPUTS_NAME
from kubesage.runners.sagemaker.compiler.parameters import TRACKING_PARAMETERS
from kubesage.runners.sagemaker.compiler.pipeline import CompiledPipeline, build_pipeline, compile_spec
from kubesage.runners.sagemaker.compiler.session import offline_env, validate_sdk_config_once

__all__ = [
    "OUTPUTS_FILE",
    "OUTPUTS_NAME",
    "TRACKING_PARAMETERS",
    "CompiledPipeline",
    "build_pipeline",
    "compile_spec",
    "offline_env",
    "validate_sdk_config_once",
]
