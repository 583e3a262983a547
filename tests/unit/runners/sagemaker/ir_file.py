"""Compile a KFP IR file to SageMaker the way `kubesage compile FILE.yaml --target sagemaker` does, and run a
compiled step's task through the shim in this process (no Docker)."""

import json
from pathlib import Path
from typing import Any

from kfp import compiler

from kubesage.ir.source import load_pipeline
from kubesage.runners.sagemaker import shim
from kubesage.runners.sagemaker.compiler import CompiledPipeline, compile_spec
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest


def compile_file(path: Path, config: SageMakerConfig) -> CompiledPipeline:
    source = load_pipeline(str(path), path.parent)  # an IR file is read as is: nothing is written
    return compile_spec(source.spec, config, source.platform_spec)


def task_specs(pipeline: Any, tmp_path: Path, config: SageMakerConfig | None = None) -> dict[str, dict[str, Any]]:
    """Each step's task spec by task name, compiled from `pipeline`, with SageMaker's /opt/ml under tmp_path."""
    ir = tmp_path / "fan.yaml"
    compiler.Compiler().compile(pipeline, str(ir))
    compiled = compile_file(ir, config or SageMakerConfig())
    root = str(tmp_path / "opt-ml")
    return {
        task["task"]: task
        for task in (json.loads(body.decode().replace("/opt/ml", root)) for body in compiled.assets.values())
    }


def run_task(task: dict[str, Any], spec_dir: Path, workdir: Path, *extra: str) -> int:
    """The shim's exit code for `task`, its spec written to spec_dir with the digest the step would carry."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    body = spec_bytes(task)
    (spec_dir / f"{task['task']}.json").write_bytes(body)
    argv = ["--task", task["task"], "--spec-dir", str(spec_dir), "--spec-sha256", spec_digest(body)]
    return shim.main([*argv, "--workdir", str(workdir), *extra])


def step_outputs(tmp_path: Path) -> dict[str, Any]:
    """The outputs.json the last processing step run under tmp_path wrote, removed so the next run writes afresh."""
    path = tmp_path / "opt-ml" / "processing" / "output" / "kubesage-outputs" / "outputs.json"
    found: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return found
