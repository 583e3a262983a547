"""The local backend: KFP's own local runner, each task a subprocess of this interpreter.

`SubprocessRunner(use_venv=False)` runs tasks with the installed kubesage instead of building a
virtualenv and pip-installing per task (slow, and impossible offline). The compiled IR is loaded
back and executed, so a user's IR YAML file runs exactly like a built-in pipeline.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubesage.components.steps import ENV_FAILURE_DIR
from kubesage.environment import environment
from kubesage.errors import RunnerError
from kubesage.pipeline_source import PipelineSource
from kubesage.runners.base import ProgressCallback, RunHandle, Runner
from kubesage.tracking import PipelineRun

DEFAULT_PIPELINE_ROOT = Path("local_outputs")


def read_failures(directory: Path) -> str | None:
    """The reasons steps wrote before failing, oldest first."""
    if not directory.is_dir():
        return None
    reports = sorted(directory.glob("*.txt"), key=lambda p: p.stat().st_mtime)
    lines = [f"step {p.stem}: {p.read_text(encoding='utf-8').strip()}" for p in reports]
    return "; ".join(lines) or None


class LocalRunner(Runner):
    """Runs the pipeline with kfp.local on this machine."""

    name = "local"

    def __init__(self, pipeline_root: str | Path | None = None) -> None:
        self.pipeline_root = Path(pipeline_root or os.environ.get("KUBESAGE_LOCAL_ROOT") or DEFAULT_PIPELINE_ROOT)

    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        output.parent.mkdir(parents=True, exist_ok=True)
        if pipeline.ir_path.resolve() != output.resolve():
            shutil.copyfile(pipeline.ir_path, output)
        return output

    def submit(self, pipeline: PipelineSource, parameters: Mapping[str, Any], tracking: PipelineRun) -> RunHandle:
        run_id = f"{pipeline.name}-{uuid.uuid4().hex[:8]}"
        return RunHandle(
            pipeline_run_id=tracking.run_id,
            backend_id=run_id,
            pipeline=pipeline,
            parameters=dict(parameters),
            tracking=tracking,
        )

    def wait(self, handle: RunHandle, progress: ProgressCallback) -> None:
        from kfp import components, local

        failure_dir = Path(tempfile.mkdtemp(prefix="kubesage-failures-"))
        env = {**handle.tracking.step_env, ENV_FAILURE_DIR: str(failure_dir)}
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(self.pipeline_root.resolve()),
            raise_on_error=True,
        )
        # Display names and the image name mean nothing to the local subprocess runner; say it once
        # in the docs rather than on every task.
        warnings.filterwarnings("ignore", message=r".*have no effect in the current local runner.*")
        warnings.filterwarnings("ignore", message=r".*non-Python base image.*")
        pipeline = components.load_component_from_file(str(handle.pipeline.ir_path))
        progress(f"running {handle.pipeline.name} on KFP's local runner (outputs in {self.pipeline_root})")
        try:
            with environment(env):
                pipeline(**handle.parameters)
        except Exception as exc:
            reason = read_failures(failure_dir) or f"{type(exc).__name__}: {exc}"
            raise RunnerError(f"pipeline {handle.pipeline.name} failed: {reason}") from exc
        finally:
            shutil.rmtree(failure_dir, ignore_errors=True)
