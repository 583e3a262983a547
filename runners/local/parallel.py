"""Independent tasks at once in kfp.local, at most `workers` tasks running at any time.

kfp.local runs a DAG without control flow one task at a time (`dag_orchestrator.run_dag`), and the
branches of a `dsl.ParallelFor` on a thread pool capped at 2. `parallel_dags(workers)`, for one run:

- replaces `run_dag` with a scheduler that starts every task whose upstream tasks have succeeded
  (same arguments, IOStore and failure stack as kfp's; on a failure no new task starts, running ones
  finish, and the DAG fails as kfp's does);
- lifts the ParallelFor cap to `workers`;
- bounds the tasks actually running, whatever started them, with one semaphore around kfp's
  `task_executor.execute_single_task`;
- makes kfp.local's two process-global output helpers safe with threads: `indented_print` (which
  swaps `builtins.print`) and `local_logger_context` (which swaps the root logger's handlers).

DAGs with conditions or exit handlers (kfp's enhanced orchestrator) keep its order for their regular
tasks; their ParallelFor branches and sub-DAGs run in parallel as above.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

_indent = threading.local()


@contextlib.contextmanager
def parallel_dags(workers: int) -> Iterator[None]:
    from kfp.local import logging_utils
    from kfp.local.orchestrator import dag_orchestrator, enhanced_dag_orchestrator, task_executor

    slots = threading.BoundedSemaphore(workers)
    original_execute = task_executor.execute_single_task

    def execute_single_task(**kwargs: Any) -> Any:
        with slots:
            return original_execute(**kwargs)

    class ParallelExecutor(enhanced_dag_orchestrator.ParallelExecutor):
        def __init__(self, max_workers: int | None = None) -> None:
            super().__init__(max_workers)
            self.conservative_max = workers
            self.max_workers = min(max_workers or workers, workers)

    def run_dag(**kwargs: Any) -> Any:
        return _run_dag(dag_orchestrator, pool_size=workers, **kwargs)

    patches = [
        (task_executor, "execute_single_task", execute_single_task),
        (enhanced_dag_orchestrator, "ParallelExecutor", ParallelExecutor),
        (logging_utils, "indented_print", _indented_print),
        (logging_utils, "local_logger_context", _shared_logger_context(logging_utils)),
    ]
    if workers > 1:
        patches.append((dag_orchestrator, "run_dag", run_dag))
    originals = [(module, name, getattr(module, name)) for module, name, _ in patches]
    original_print = builtins.print
    builtins.print = _print_with(original_print)
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in originals:
            setattr(module, name, value)
        builtins.print = original_print


def _run_dag(
    dag_orchestrator: Any,
    pool_size: int,
    pipeline_resource_name: str,
    dag_component_spec: Any,
    executors: dict[str, Any],
    components: dict[str, Any],
    dag_arguments: dict[str, Any],
    pipeline_root: str,
    runner: Any,
    unique_pipeline_id: str,
    fail_stack: list[str],
    parent_io_store: Any = None,
) -> tuple[dict[str, Any], Any]:
    """kfp's `run_dag`, with every task whose upstream tasks succeeded started at once."""
    from kfp.local import io, status
    from kfp.local.orchestrator import task_executor
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    arguments = OrchestratorUtils.join_user_inputs_and_defaults(
        dag_arguments=dag_arguments, dag_inputs_spec=dag_component_spec.input_definitions
    )
    io_store = io.IOStore(parent=parent_io_store)
    for key, value in arguments.items():
        io_store.put_parent_input(key, value)
    tasks = dag_component_spec.dag.tasks
    upstream = {name: set(spec.dependent_tasks) & set(tasks) for name, spec in tasks.items()}

    def run_task(name: str) -> tuple[dict[str, Any], Any]:
        spec = tasks[name]
        component = components[spec.component_ref.name]
        if component.WhichOneof("implementation") == "dag":
            return dag_orchestrator.run_dag(
                pipeline_resource_name=pipeline_resource_name,
                dag_component_spec=component,
                components=components,
                executors=executors,
                dag_arguments=OrchestratorUtils.make_task_arguments(spec.inputs, io_store),
                pipeline_root=pipeline_root,
                runner=runner,
                unique_pipeline_id=unique_pipeline_id,
                fail_stack=fail_stack,
                parent_io_store=io_store,
            )
        return task_executor.execute_single_task(
            task_name=name,
            task_spec=spec,
            pipeline_resource_name=pipeline_resource_name,
            components=components,
            executors=executors,
            io_store=io_store,
            pipeline_root=pipeline_root,
            runner=runner,
            unique_pipeline_id=unique_pipeline_id,
            fail_stack=fail_stack,
        )

    pending, done = set(tasks), set[str]()
    failed: str | None = None
    # Threads only wait on task processes; the semaphore in execute_single_task bounds the tasks.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(pool_size, 1) * 2) as pool:
        running: dict[concurrent.futures.Future[tuple[dict[str, Any], Any]], str] = {}
        while pending or running:
            if failed is None:
                for name in sorted(n for n in pending if upstream[n] <= done):
                    pending.discard(name)
                    running[pool.submit(run_task, name)] = name
            if not running:
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                outputs, task_status = future.result()
                if task_status == status.Status.FAILURE:
                    failed = failed or name
                    continue
                for key, output in outputs.items():
                    io_store.put_task_output(name, key, output)
                done.add(name)
    if failed is not None:
        fail_stack.append(failed)
        return {}, status.Status.FAILURE
    return (
        OrchestratorUtils.get_dag_outputs(dag_outputs_spec=dag_component_spec.dag.outputs, io_store=io_store),
        status.Status.SUCCESS,
    )


# --- thread-safe versions of kfp.local's output helpers --------------------------------------------
@contextlib.contextmanager
def _indented_print(num_spaces: int = 4) -> Iterator[None]:
    """kfp's `indented_print`, per thread (the global `print` below reads the thread's indent)."""
    previous = getattr(_indent, "spaces", 0)
    _indent.spaces = num_spaces
    try:
        yield
    finally:
        _indent.spaces = previous


def _print_with(original: Any) -> Any:
    def indented(
        *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
    ) -> None:
        spaces = getattr(_indent, "spaces", 0)
        if not spaces:
            original(*args, sep=sep, end=end, file=file, flush=flush)
            return
        # One write per call, so lines of tasks running at once never split each other.
        target = sys.stdout if file is None else file
        text = (" " if sep is None else sep).join(str(a) for a in args) + ("\n" if end is None else end)
        target.write(" " * spaces + text)
        if flush:
            target.flush()

    return indented


def _shared_logger_context(logging_utils: Any) -> Any:
    """kfp's `local_logger_context`, entered by several threads: the first in sets it up, the last
    out restores the root logger (kfp's own would restore another thread's handler)."""
    lock = threading.Lock()
    depth = 0
    exit_stack: contextlib.ExitStack | None = None
    original = logging_utils.local_logger_context

    @contextlib.contextmanager
    def shared() -> Iterator[None]:
        nonlocal depth, exit_stack
        with lock:
            if depth == 0:
                exit_stack = contextlib.ExitStack()
                exit_stack.enter_context(original())
            depth += 1
        try:
            yield
        finally:
            with lock:
                depth -= 1
                if depth == 0 and exit_stack is not None:
                    exit_stack.close()
                    exit_stack = None

    return shared
