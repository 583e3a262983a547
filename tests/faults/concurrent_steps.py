"""Pipeline runs' worth of tracking calls, one process each, all started at once on one store (run by
test_concurrent_runs_share_a_new_sqlite_store).

`python -m tests.faults.concurrent_steps URI NAME...`: MLflow and its SQLite stores' code are imported
once, here; then one process per NAME is forked, and all are released together, so they meet the
store (which need not exist yet) at the same moment. Six interpreters each importing MLflow for
themselves cost seconds of CPU apiece on the 2-core machine, and arrived at the store one import
apart. Exits non-zero if any run failed; each failure's traceback is on stderr.
"""

from __future__ import annotations

import os
import sys
from multiprocessing.synchronize import Event

from kubesage import tracking as t


def one_run(uri: str, name: str) -> None:
    run = t.start_pipeline_run(name, "local", {"seed": 1}, uri=uri)
    os.environ.update(run.step_env)
    for step in ("preprocess", "train", "evaluate"):
        with t.step_run(step) as tracker:
            tracker.log_params({f"p{i}": i for i in range(10)})
            tracker.log_metrics({f"m{i}": float(i) for i in range(10)}, also_parent=True)
            tracker.set_tags({"kubesage.test": step}, also_parent=True)
    t.finish_pipeline_run(run, "FINISHED")


def _when_released(start: Event, uri: str, name: str) -> None:
    start.wait()
    one_run(uri, name)


# What each run would import on its first tracking call, imported once before the fork. Nothing is
# opened: no engine, connection or store exists until a run makes its own.
PRELOADED = (
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "kubesage.tracking.sqlite_store",
)


def main(uri: str, names: list[str]) -> int:
    import importlib
    import multiprocessing

    for module in PRELOADED:
        importlib.import_module(module)
    context = multiprocessing.get_context("fork")
    start = context.Event()
    runs = [context.Process(target=_when_released, args=(start, uri, name)) for name in names]
    for process in runs:
        process.start()
    start.set()
    for process in runs:
        process.join()
    codes = [process.exitcode for process in runs]
    print(f"exit codes: {codes}")
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
