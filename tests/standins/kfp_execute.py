"""Execute one submitted KFP run with kfp.local: the stand-in's "cluster", one clean process per run.

Started by `tests/standins/kfp_api.py` as `python kfp_execute.py RUN_DIR` with a minimal environment
(no MLflow or kubesage variables): like a pod, each task sees only the env its IR container spec
carries, which kfp.local applies per task. RUN_DIR holds `pipeline.yaml` (the submitted
PipelineSpec), `run.json` (parameters, pipeline root, faults); this process appends one JSON line per
task state change to `events.jsonl`, which the API server turns into `run_details.task_details`.
`run.json`'s `executor` says how tasks run: `subprocess` (kfp.local's SubprocessRunner, this
interpreter) or `docker` (kfp.local's DockerRunner: each task in its IR container spec's image, with
its command and env, as a pod; see `DockerPods` in kfp_api.py).

Only kfp (with its PyYAML and, for `docker`, its docker SDK), the standard library, kubesage's
patch of kfp.local's condition evaluation and its task launcher are imported here: this file runs
outside the test's packages. A cluster's driver evaluates `dsl.If` conditions correctly; kfp.local
2.17 does not (runners/local/UPSTREAM.md), so the stand-in applies the same patch as the local
runner, to behave as a cluster does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

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


def _runner(executor: dict[str, Any], spec: dict[str, Any], stack: contextlib.ExitStack) -> tuple[Any, type]:
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
        server = stack.enter_context(ForkServer())
        server.preload(preload_for(spec))
        stack.enter_context(task_handler(server, StepRunNotes()))
    return local.SubprocessRunner(use_venv=False), subprocess_task_handler.SubprocessTaskHandler


def main(run_dir: Path) -> int:
    from kfp import components, local

    from kubesage.runners.local.conditions import evaluated_conditions

    config = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    events = _Events(run_dir)
    faults = config.get("faults", {})
    fail: dict[str, str] = faults.get("fail_task", {})
    import yaml

    spec = yaml.safe_load((run_dir / "pipeline.yaml").read_text(encoding="utf-8"))
    names = _task_names(spec)
    logging.getLogger().addFilter(_TaskWatcher(events, fail, faults.get("cancel_after_task"), names))
    logging.getLogger().setLevel(logging.INFO)
    with contextlib.ExitStack() as stack:
        runner, handler = _runner(config.get("executor", {}), spec, stack)
        _give_secrets(handler, events, json.loads(os.environ.pop("KFP_STANDIN_SECRET_ENV", "{}")))
        _inject_failures(handler, events, fail)
        local.init(runner=runner, pipeline_root=config["pipeline_root"], raise_on_error=True)
        pipeline = components.load_component_from_file(str(run_dir / "pipeline.yaml"))
        try:
            # A cluster reports a dsl.If branch whose condition was false as a SKIPPED task.
            with evaluated_conditions(lambda branch: events.emit(task=branch.task, state="SKIPPED")):
                pipeline(**config["parameters"])
        except Exception as exc:  # kfp.local raises RuntimeError naming the failed task
            events.emit(run="FAILED", message=_ANSI.sub("", str(exc)))
            return 1
    events.emit(run="SUCCEEDED")
    return 0


if __name__ == "__main__":
    target = Path(sys.argv[1])
    with (target / "tasks.log").open("a", encoding="utf-8") as log:
        sys.stdout = log
        sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, force=True)
        raise SystemExit(main(target))
