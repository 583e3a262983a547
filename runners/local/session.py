"""What kubesage adds around one kfp.local pipeline call: launcher, cache, parallelism.

`kfp_session` is entered after `local.init` and around the pipeline call; it restores every patch of
kfp.local on exit, so a later plain kfp.local call in the same process is unaffected.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesage.runners.base import Progress
from kubesage.runners.local import LocalOptions
from kubesage.runners.local.launcher import fork_available
from kubesage.runners.local.warm import WarmLease, warm_fork_server
from kubesage.tracking import PipelineRun

if TYPE_CHECKING:
    from kubesage.runners.local.cache import StepRunNotes

# Under the pipeline root, beside the runs whose artifacts the entries name.
CACHE_DIRNAME = ".kubesage_cache"


def cache_root(pipeline_root: Path) -> Path:
    return pipeline_root.resolve() / CACHE_DIRNAME


@contextlib.contextmanager
def launcher_for_run(options: LocalOptions, progress: Progress) -> Iterator[WarmLease | None]:
    """The fork server for a run: this process's warm one (warm.py), or a new one that starts
    importing at once, alongside the rest of the run's start. None: KFP's subprocess launcher."""
    if options.launcher != "fork":
        yield None
        return
    if not fork_available():
        progress.info("fork is not available here: each task starts as a new Python process")
        yield None
        return
    with warm_fork_server() as lease:
        yield lease


@contextlib.contextmanager
def kfp_session(
    options: LocalOptions, lease: WarmLease | None, tracking: PipelineRun, pipeline_root: Path, progress: Progress
) -> Iterator[None]:
    # Imported here, not at the top: they import kfp, and the fork server should start importing
    # before this process does.
    from kubesage.runners.local.cache import CachedStepRecorder, ContentCache, StepRunNotes, code_digest_now, install
    from kubesage.runners.local.launcher import task_handler
    from kubesage.runners.local.parallel import parallel_dags

    notes = StepRunNotes()
    if options.enable_caching:
        recorder = CachedStepRecorder(tracking, progress)
        # The cache keys on the code the tasks run: the warm fork server's (it imported kubesage when
        # it started), or the files now for tasks that start as new processes.
        code_digest = lease.code_digest if lease is not None else code_digest_now()
        install(ContentCache(str(cache_root(pipeline_root)), notes, code_digest, on_hit=recorder))
    workers = options.max_parallel or os.cpu_count() or 1
    server = lease.server if lease is not None else None
    with task_handler(server, notes), parallel_dags(workers), _named_tasks(notes):
        yield


@contextlib.contextmanager
def _named_tasks(notes: StepRunNotes) -> Iterator[None]:
    """Tell `notes` which task kfp.local is about to run on this thread (its cache lookup comes first)."""
    from kfp.local.orchestrator import task_executor

    original = task_executor.execute_single_task

    def execute_single_task(**kwargs: Any) -> Any:
        notes.begin(kwargs["task_name"])
        return original(**kwargs)

    task_executor.execute_single_task = execute_single_task
    try:
        yield
    finally:
        task_executor.execute_single_task = original
