"""KFP's local runner: tasks forked from a warm process (launcher=fork) or KFP's subprocesses.

`SubprocessRunner(use_venv=False)` runs tasks with the installed kubesage instead of building a
virtualenv and pip-installing per task (slow, and impossible offline). The compiled IR is loaded
back and executed, so a user's IR YAML file runs exactly like a built-in pipeline. The launcher, the
warm zygote a process keeps between its runs, the content-keyed cache and parallel DAGs are in
launcher.py, warm.py, cache.py and parallel.py (session.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubesage.errors import RunnerError
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import Progress, RunContext, Runner
from kubesage.runners.local import LocalOptions
from kubesage.runners.local.conditions import evaluated_conditions, skipped_event
from kubesage.runners.local.launcher import preload_for
from kubesage.runners.local.session import cache_root, kfp_session, launcher_for_run
from kubesage.runners.local.task_logs import capture_task_output
from kubesage.runners.local.warm import WarmLease
from kubesage.tracking.contract import ENV_FAILURE_DIR, read_failures
from kubesage.util.environment import environment

DEFAULT_PIPELINE_ROOT = Path("local_outputs")


class LocalRunner(Runner):
    """Runs the pipeline with kfp.local on this machine."""

    name = "local"
    Options = LocalOptions
    options: LocalOptions
    _launcher: WarmLease | None = None

    @property
    def pipeline_root(self) -> Path:
        return Path(self.options.pipeline_root or os.environ.get("KUBESAGE_LOCAL_ROOT") or DEFAULT_PIPELINE_ROOT)

    def compile(self, pipeline: PipelineSource, output: Path) -> Path:
        output.parent.mkdir(parents=True, exist_ok=True)
        if pipeline.ir_path.resolve() != output.resolve():
            shutil.copyfile(pipeline.ir_path, output)
        return output

    @contextmanager
    def session(self, progress: Progress) -> Iterator[None]:
        # A new fork server starts importing now, while the parameters are checked and the MLflow
        # parent run opens; a warm one from an earlier run of this process is ready.
        with launcher_for_run(self.options, progress) as lease:
            self._launcher = lease
            try:
                yield
            finally:
                self._launcher = None

    def _run(self, context: RunContext) -> None:
        context.record_backend_run(f"{context.pipeline.name}-{uuid.uuid4().hex[:8]}")
        # The run's scratch folder, removed however the run ends: failures/, where a failing step writes
        # its reason, and workspace/, KFP's workspace (dsl.PipelineConfig(workspace=...)), which kfp.local
        # would otherwise make in /tmp on each init and never remove.
        with tempfile.TemporaryDirectory(prefix="kubesage-run-", ignore_cleanup_errors=True) as scratch:
            failure_dir, workspace = Path(scratch) / "failures", Path(scratch) / "workspace"
            failure_dir.mkdir()
            workspace.mkdir()
            self._run_in(context, failure_dir, workspace)

    def _run_in(self, context: RunContext, failure_dir: Path, workspace: Path) -> None:
        from kfp import components, local

        env = {**context.tracking.step_env, ENV_FAILURE_DIR: str(failure_dir)}
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(self.pipeline_root.resolve()),
            workspace_root=str(workspace),
            raise_on_error=True,
            enable_caching=self.options.enable_caching,
            cache_root=str(cache_root(self.pipeline_root)),
        )
        # Display names and the image name mean nothing to the local subprocess runner; say it once
        # in the docs rather than on every task.
        warnings.filterwarnings("ignore", message=r".*have no effect in the current local runner.*")
        warnings.filterwarnings("ignore", message=r".*non-Python base image.*")
        pipeline = components.load_component_from_file(str(context.pipeline.ir_path))
        if self._launcher is not None:
            self._launcher.server.preload(preload_for(context.pipeline.spec))
        root = self.pipeline_root
        log_path = root / "logs" / f"{context.backend_run_id}.log"
        context.progress.info(f"task outputs in {root}/, task logs in {log_path}")
        session = kfp_session(self.options, self._launcher, context.tracking, root, context.progress)
        with capture_task_output(log_path, context.progress) as events, session:
            try:
                with environment(env), evaluated_conditions(lambda b: context.progress.step(skipped_event(b))):
                    pipeline(**context.parameters)
            except Exception as exc:
                if self._launcher is not None and self._launcher.server.tasks_running():
                    self._launcher.retire()  # stopping it stops the tasks the failure left running
                reason = read_failures(failure_dir) or f"{type(exc).__name__}: {exc}"
                for task in events.failed:
                    tail = "\n".join(f"  | {line}" for line in _tail_without(events.tail(task), reason))
                    context.progress.info(f"last lines of task {task} (full log: {log_path}):\n{tail}")
                raise RunnerError(f"pipeline {context.pipeline.name} failed: {reason}") from exc


def _tail_without(lines: list[str], reason: str) -> list[str]:
    """The task's last lines, minus the ones that only repeat the reason the error will show."""
    words = reason.split(": ", 1)[-1]
    return [line for line in lines if words not in line]
