"""Compile a KFP IR file to SageMaker the way `kubesage compile FILE.yaml --target sagemaker` does."""

from pathlib import Path

from kubesage.ir.source import load_pipeline
from kubesage.runners.sagemaker.compiler import CompiledPipeline, compile_spec
from kubesage.runners.sagemaker.config import SageMakerConfig


def compile_file(path: Path, config: SageMakerConfig) -> CompiledPipeline:
    source = load_pipeline(str(path), path.parent)  # an IR file is read as is: nothing is written
    return compile_spec(source.spec, config, source.platform_spec)
