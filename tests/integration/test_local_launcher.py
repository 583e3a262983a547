"""The local runner's task launchers on real kfp.local runs, tracked in a real MLflow SQLite store.

Each task is a fresh fork of one warm process (launcher=fork, the default) or KFP's own subprocess
(launcher=subprocess): whatever a task changes or however it dies, the next task starts clean.
Independent tasks run at once, up to `max_parallel`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from kubesage.runners.base import RunResult
from kubesage.runners.registry import get_runner, load_pipeline

pytestmark = [pytest.mark.integration]

PIPELINES = "tests.integration.local_pipelines"


def run_local(ref: str, workdir: Path, params: dict[str, Any] | None = None, **options: Any) -> RunResult:
    source = load_pipeline(f"{PIPELINES}:{ref}", workdir / "build")
    runner = get_runner("local", {"pipeline_root": str(workdir / "root"), **options})
    return runner.run(source, params or {})


def step_runs(uri: str, result: RunResult) -> dict[str, Any]:
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(result.mlflow_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    return {c.data.tags["kubesage.step"]: c for c in children}


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_a_task_leaves_nothing_behind_for_the_next(launcher: str, mlflow_sqlite: str, tmp_path: Path) -> None:
    result = run_local("isolation_pipeline", tmp_path, launcher=launcher)

    assert result.succeeded, result.failure
    runs = step_runs(mlflow_sqlite, result)
    left = runs["leave_traces"].data.params
    assert left["cwd"] == "/"
    seen = runs["look_for_traces"].data.params
    assert {name: value for name, value in seen.items() if name != "temp_dir"} == {
        "global_seen": "False",
        "env_seen": "absent",
        "cwd": str(Path.cwd()),
        "input": "traces left",
    }
    # Each task's temporary folder lasts as long as the task, as a pod's /tmp: what the task left
    # there, and the folder KFP's launch line made for the component's source, are gone.
    temp_left, source = Path(left["temp_left"]), Path(left["source"])
    task_tmp = temp_left.parent
    assert task_tmp.name == "tmp" and task_tmp.parent.name.startswith("kubesage-task-")
    assert source.parent.parent == task_tmp and source.name == "ephemeral_component.py"
    assert not temp_left.exists() and not source.exists() and not task_tmp.exists()
    assert Path(seen["temp_dir"]).parent.name.startswith("kubesage-task-") and Path(seen["temp_dir"]) != task_tmp
    # Nor does the run: kfp.local's workspace for it (KFP leaves its own default in /tmp) is removed.
    from kfp.local import config

    workspace = Path(config.LocalExecutionConfig.instance.workspace_root)
    assert workspace.parent.name.startswith("kubesage-run-") and not workspace.parent.exists()


@pytest.mark.parametrize(("how", "line"), [("segfault", "task process ended by signal 11"), ("exit", None)])
def test_a_crashed_task_does_not_take_the_next_one_down(
    how: str, line: str | None, mlflow_sqlite: str, tmp_path: Path
) -> None:
    result = run_local("crash_pipeline", tmp_path, {"how": how})

    assert result.status == "failed"
    assert "'crash'" in (result.failure or "")
    runs = step_runs(mlflow_sqlite, result)
    assert runs["survive"].info.status == "FINISHED"
    assert runs["survive"].data.params == {"pid_differs": "True"}
    if line:
        log = (tmp_path / "root" / "logs" / f"{result.backend_id}.log").read_text(encoding="utf-8")
        assert line in log


def _where(uri: str, workdir: Path) -> dict[str, str]:
    result = run_local("where_am_i_pipeline", workdir)
    assert result.succeeded, result.failure
    return dict(step_runs(uri, result)["where_am_i"].data.params)


def test_later_runs_fork_from_the_process_warm_zygote_and_see_nothing_of_earlier_ones(
    mlflow_sqlite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubesage.runners.local import warm

    assert run_local("isolation_pipeline", tmp_path / "leaves-traces").succeeded
    first = _where(mlflow_sqlite, tmp_path / "first")
    again = _where(mlflow_sqlite, tmp_path / "again")

    # Nothing the earlier run's task changed reached a later run's task...
    for seen in (first, again):
        assert {k: v for k, v in seen.items() if k != "parent_pid"} == {
            "global_seen": "False",
            "env_seen": "absent",
            "cwd": str(Path.cwd()),
        }
    # ...though both were forked from one zygote, this process's warm one (not the test process).
    zygote = int(first["parent_pid"])
    assert int(again["parent_pid"]) == zygote
    assert zygote != os.getpid()

    # A failed run that left no task running keeps it; an edit of kubesage's source retires it.
    assert run_local("crash_pipeline", tmp_path / "fails", {"how": "exit"}).status == "failed"
    assert int(_where(mlflow_sqlite, tmp_path / "after-failure")["parent_pid"]) == zygote
    monkeypatch.setattr(warm, "_code_digest", lambda: "kubesage edited")
    assert int(_where(mlflow_sqlite, tmp_path / "after-edit")["parent_pid"]) != zygote
    with pytest.raises(ProcessLookupError):
        os.kill(zygote, 0)  # the retired zygote was stopped


@pytest.mark.usefixtures("mlflow_sqlite")
def test_a_retired_zygote_stops_when_its_last_run_ends_and_the_next_run_gets_a_new_one() -> None:
    """(`mlflow_sqlite`: each zygote opens the tracking store as it warms up; without a store of the
    test's own that was a new `mlflow.db` in the working directory, the repository's, migrated from
    scratch by each of the two zygotes.)"""
    from kubesage.runners.local import warm

    with warm.warm_fork_server() as lease, warm.warm_fork_server() as other:
        assert other.server is lease.server
        lease.retire()  # e.g. a run interrupted with tasks still running in it
        assert lease.server.alive()  # the other run still uses it
    assert not lease.server.alive()
    with warm.warm_fork_server() as later:
        assert later.server is not lease.server
        assert later.server.alive()


@pytest.mark.usefixtures("mlflow_sqlite")
def test_a_run_that_raises_with_no_task_running_keeps_the_zygote_and_an_interrupted_one_does_not() -> None:
    """(A refused run, bad parameters say, used to stop the zygote: the next run paid its imports again.)"""
    from kubesage.errors import ParameterError
    from kubesage.runners.local import warm

    with warm.warm_fork_server() as lease:
        server = lease.server
    with pytest.raises(ParameterError), warm.warm_fork_server() as refused:
        assert refused.server is server
        raise ParameterError("max_depth must be at least 1")
    with pytest.raises(KeyboardInterrupt), warm.warm_fork_server() as interrupted:
        assert interrupted.server is server and server.alive()  # kept after the refusal
        raise KeyboardInterrupt
    assert not server.alive()
    with warm.warm_fork_server() as later:
        assert later.server is not server


def _peers_seen(uri: str, result: RunResult) -> list[int]:
    runs = step_runs(uri, result)
    return sorted(int(runs[f"hold_{label}"].data.metrics["peers_seen"]) for label in "abcd")


@pytest.mark.parametrize(
    ("max_parallel", "wait_seconds", "peers_seen"),
    [
        (4, 300.0, [4, 4, 4, 4]),  # every task saw the other three running
        (1, 0.0, [1, 2, 3, 4]),  # one after another: each found only those before it
    ],
    ids=["independent-tasks-at-once", "max-parallel-one-in-turn"],
)
def test_max_parallel_bounds_independent_tasks(
    mlflow_sqlite: str, tmp_path: Path, max_parallel: int, wait_seconds: float, peers_seen: list[int]
) -> None:
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    params = {"rendezvous_dir": str(rendezvous), "wait_seconds": wait_seconds}

    result = run_local("four_independent_pipeline", tmp_path, params, max_parallel=max_parallel)

    assert result.succeeded, result.failure
    assert _peers_seen(mlflow_sqlite, result) == peers_seen
