"""Execute one submitted KFP run with kfp.local: the stand-in's "cluster", one clean process per run.

`tests/standins/kfp_api.py` runs each run with a minimal environment (no MLflow or kubesage
variables): like a pod, each task sees only the env its IR container spec carries, which kfp.local
applies per task. A run that executes in subprocesses is forked from the stand-in's warm executor
(`python kfp_execute.py --serve`, `serve_runs`, driven by kfp_warm.py), its fork-server zygote then
forked from the run: the imports are paid once per stand-in. A run of `DockerPods` is started as
`python kfp_execute.py RUN_DIR`. RUN_DIR holds `pipeline.yaml` (the submitted
PipelineSpec), `run.json` (parameters, pipeline root, faults); this process appends one JSON line per
task state change to `events.jsonl`, which the API server turns into `run_details.task_details`.
`run.json`'s `executor` says how tasks run: `subprocess` (kfp.local's SubprocessRunner, this
interpreter) or `docker` (kfp.local's DockerRunner: each task in its IR container spec's image, with
its command and env, as a pod; see `DockerPods` in kfp_api.py).

Only kfp (with its PyYAML and, for `docker`, its docker SDK), the standard library, kubesage's
patch of kfp.local's condition evaluation and its task launcher are imported here (the warm
executor adds what the zygote would import: KFP's executor, MLflow's client, the churn steps'
libraries): this file runs outside the test's packages. A cluster's driver evaluates `dsl.If`
conditions correctly; kfp.local 2.17 does not (runners/local/UPSTREAM.md), so the stand-in applies
the same patch as the local runner, to behave as a cluster does.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Literal

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_ENDED = re.compile(r"Task '([^']+)' finished with status (\w+)")


class _Events:
    """Appends task events and remembers where each task's log output starts (for its error line)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "events.jsonl"
        self.log_path = run_dir / "tasks.log"
        self.current: str | None = None
        self.log_start = 0

    def emit(self, **event: Any) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"time": time.time(), **event}) + "\n")

    def last_log_line(self) -> str:
        sys.stdout.flush()
        with self.log_path.open("rb") as log:
            log.seek(self.log_start)
            lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines()]
        lines = [_ANSI.sub("", ln) for ln in lines if ln]
        return lines[-1] if lines else "the task exited with a non-zero status"


class _TaskWatcher(logging.Filter):
    """kfp.local logs 'Executing task X' and 'Task X finished with status Y': the task life cycle.

    A filter on the root logger, not a handler: kfp.local swaps the root logger's handlers per task.
    """

    def __init__(
        self, events: _Events, fail: dict[str, str], cancel_after: str | None, names: dict[str, str] | None = None
    ) -> None:
        super().__init__()
        self.names = names or {}
        self.events = events
        self.fail = fail
        self.cancel_after = cancel_after

    def filter(self, record: logging.LogRecord) -> bool:
        self.observe(_ANSI.sub("", record.getMessage()))
        return True

    def observe(self, text: str) -> None:
        if started := _STARTED.search(text):
            name = self.names.get(started.group(1), started.group(1))
            self.events.current = name
            sys.stdout.flush()
            self.events.log_start = self.events.log_path.stat().st_size
            self.events.emit(task=name, state="RUNNING")
        elif ended := _ENDED.search(text):
            name, status = self.names.get(ended.group(1), ended.group(1)), ended.group(2)
            if status == "SUCCESS":
                self.events.emit(task=name, state="SUCCEEDED")
                if name == self.cancel_after:
                    self.events.emit(run="CANCELED", message=f"run canceled by a user after task {name}")
                    os._exit(0)  # the run stops here, as a terminated workflow would
            else:
                message = self.fail.get(name) or self.events.last_log_line()
                self.events.emit(task=name, state="FAILED", message=message)


def _task_names(spec: dict[str, Any]) -> dict[str, str]:
    """kfp.local logs a task by its component's name (`scale-4` for `comp-scale-4`); a cluster by the
    task's name (`scale`). Component name -> task name, from the IR, so the details read as a cluster's."""
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec.get("components", {}).values() if "dag" in c)]
    return {
        task["componentRef"]["name"].removeprefix("comp-"): name
        for dag in dags
        for name, task in dag.get("tasks", {}).items()
    }


def _inject_failures(handler: type, events: _Events, fail: dict[str, str]) -> None:
    """A task named in `fail` does not run: it fails with the given message, as a pod killed by the cluster."""
    from kfp.local import status

    real_run = handler.run

    def run(self: Any) -> Any:
        if events.current in fail:
            print(fail[events.current], flush=True)
            return status.Status.FAILURE
        return real_run(self)

    handler.run = run  # type: ignore[attr-defined]


def _give_secrets(handler: type, events: _Events, secret_env: dict[str, dict[str, str]]) -> None:
    """Each task gets the secret values its executor's `secretAsEnv` names (resolved by the API stand-in
    from its secret store), as a kubelet puts them in that pod's environment; no other task sees them."""
    real_run = handler.run

    def run(self: Any) -> Any:
        self.env_vars = {**self.env_vars, **secret_env.get(events.current or "", {})}
        return real_run(self)

    handler.run = run  # type: ignore[attr-defined]


def _runner(
    executor: dict[str, Any], spec: dict[str, Any], stack: contextlib.ExitStack, zygote: Literal["spawn", "fork"]
) -> tuple[Any, type]:
    """The kfp.local runner `executor` names, and the task handler class it runs each task with.

    `subprocess` tasks are forked from a warm process by kubesage's local launcher (a fresh process
    per task, with this process's minimal environment and the IR's env, as KFP's subprocess gets;
    runners/local/launcher.py) instead of each starting Python and importing MLflow, XGBoost and KFP
    again: the same protocol, run and task states. Without fork, KFP's own subprocess."""
    from kfp import local

    if executor.get("kind") == "docker":
        import docker
        from kfp.local import docker_task_handler

        mounts = [
            docker.types.Mount(target=path, source=path, type="bind", read_only=True)
            for path in executor["read_only_mounts"]
        ]
        docker_runner = local.DockerRunner(
            network_mode=executor["network_mode"], mounts=mounts, labels=executor["labels"]
        )
        return docker_runner, docker_task_handler.DockerTaskHandler
    from kfp.local import subprocess_task_handler

    from kubesage.runners.local.cache import StepRunNotes
    from kubesage.runners.local.launcher import ForkServer, fork_available, preload_for, task_handler

    if fork_available():
        # A pod's tasks get their MLflow store from the IR's hand-off, not from this environment.
        server = stack.enter_context(ForkServer(zygote=zygote, warm_tracking_store=False))
        server.preload(preload_for(spec))
        stack.enter_context(task_handler(server, StepRunNotes()))
    return local.SubprocessRunner(use_venv=False), subprocess_task_handler.SubprocessTaskHandler


def main(run_dir: Path, zygote: Literal["spawn", "fork"] = "spawn") -> int:
    from kfp import components, local

    from kubesage.runners.local.conditions import evaluated_conditions

    config = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    events = _Events(run_dir)
    faults = config.get("faults", {})
    fail: dict[str, str] = faults.get("fail_task", {})
    import yaml

    pipeline_yaml = (run_dir / "pipeline.yaml").read_text(encoding="utf-8")
    spec = yaml.safe_load(pipeline_yaml)
    names = _task_names(spec)
    logging.getLogger().addFilter(_TaskWatcher(events, fail, faults.get("cancel_after_task"), names))
    logging.getLogger().setLevel(logging.INFO)
    with contextlib.ExitStack() as stack:
        runner, handler = _runner(config.get("executor", {}), spec, stack, zygote)
        _give_secrets(handler, events, json.loads(os.environ.pop("KFP_STANDIN_SECRET_ENV", "{}")))
        _inject_failures(handler, events, fail)
        workspace = run_dir / "workspace"  # a pod's workspace volume; kfp.local's default is left behind in /tmp
        workspace.mkdir(exist_ok=True)
        local.init(
            runner=runner, pipeline_root=config["pipeline_root"], workspace_root=str(workspace), raise_on_error=True
        )
        pipeline = components.load_component_from_text(pipeline_yaml)
        try:
            # A cluster reports a dsl.If branch whose condition was false as a SKIPPED task.
            with evaluated_conditions(lambda branch: events.emit(task=branch.task, state="SKIPPED")):
                pipeline(**config["parameters"])
        except Exception as exc:  # kfp.local raises RuntimeError naming the failed task
            events.emit(run="FAILED", message=_ANSI.sub("", str(exc)))
            return 1
    events.emit(run="SUCCEEDED")
    return 0


def run_logged(run_dir: Path, zygote: Literal["spawn", "fork"] = "spawn") -> int:
    """`main`, with this process's output and logging going to the run's tasks.log."""
    with (run_dir / "tasks.log").open("a", encoding="utf-8") as log:
        sys.stdout = log
        sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, force=True)
        try:
            return main(run_dir, zygote)
        finally:
            log.flush()


# --- the warm executor -------------------------------------------------------------------------------
# What a run needs imported, paid once per stand-in instead of once per run (with its zygote's imports:
# each run's zygote is a fork of the run, which is a fork of this process). Fork-safe: imported under
# ZYGOTE_ENV (the stand-in starts this process with it), they start no thread.
WARM_MODULES = (
    "kfp.components",
    "kfp.local",
    "kfp.local.subprocess_task_handler",
    "yaml",
    "kubesage.runners.local.cache",
    "kubesage.runners.local.conditions",
    "kubesage.runners.local.launcher",
)


def serve_runs() -> int:
    """The stand-in's warm executor: one JSON request per stdin line, `{"id", "run_dir", "env"}`, each
    answered on stdout with `{"id", "pid"}` once the run's process is forked, and `{"pid", "returncode"}`
    when it ends. Each run is a fork in a new session (the stand-in's terminate kills its group: the
    run, its zygote and its tasks), with the run's environment and working directory, as
    `python kfp_execute.py RUN_DIR` gets them. EOF on stdin: the runs still going are killed."""
    import select
    import signal

    from kubesage.runners.local.forkserver import (
        ensure_single_threaded,
        exited_children,
        import_warm,
        wake_on_child_exit,
    )
    from kubesage.runners.local.launcher import ESSENTIAL, KUBESAGE_STEPS_PRELOAD

    gc.disable()  # it only imports and forks, as the local runner's zygote (runners/local/forkserver.py)
    for name in (*WARM_MODULES, *ESSENTIAL, *KUBESAGE_STEPS_PRELOAD):
        import_warm(name)
    ensure_single_threaded("a KFP stand-in run", "a module the warm executor imports started a thread")
    replies = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    wake_read, wake_write = wake_on_child_exit()
    runs: set[int] = set()

    def reap() -> None:
        for pid, status in exited_children():
            runs.discard(pid)
            replies.write(json.dumps({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)}) + "\n")

    try:
        while True:
            readable, _, _ = select.select([requests.fileno(), wake_read], [], [])
            if wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 512)
            reap()
            if requests.fileno() not in readable:
                continue
            line = requests.readline()
            if not line:
                return 0
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            gc.freeze()  # as the local runner's zygote does (runners/local/forkserver.py)
            pid = os.fork()
            if pid == 0:
                gc.enable()
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                inherited = (requests, replies, wake_read, wake_write)
                os._exit(_run_forked(Path(request["run_dir"]), request["env"], inherited))
            runs.add(pid)
            replies.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
    finally:
        for pid in runs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _run_forked(run_dir: Path, env: dict[str, str], inherited: tuple[Any, ...]) -> int:
    """In the forked run process: become `python kfp_execute.py RUN_DIR` and run."""
    code = 1
    try:
        os.setsid()
        for stream in inherited:
            if isinstance(stream, int):
                os.close(stream)
            else:
                stream.close()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.chdir(run_dir)
        os.environ.clear()
        os.environ.update(env)
        code = run_logged(run_dir, zygote="fork")
    except BaseException:  # the run's own failures are events; this is the executor failing
        import traceback

        with contextlib.suppress(OSError), (run_dir / "tasks.log").open("a", encoding="utf-8") as log:
            traceback.print_exc(file=log)
    return code


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        code = serve_runs()
        sys.stdout.flush()
        sys.stderr.flush()
        # Its runs are killed and its replies written: unwinding its imports (kfp, MLflow, XGBoost) at
        # exit would only hold up the session's teardown, by a second per stand-in.
        os._exit(code)
    raise SystemExit(run_logged(Path(sys.argv[1])))
