"""Inside a fan-out step's job (`fanout.py`): run the loop body once per item, in parallel processes.

The shim has already resolved the step's own inputs (the items, outer parameters, input channels)
into `outer`, KFP's executor input of the step. Each item then runs the body's tasks in order, each
as its own process with its own KFP executor input, exactly as a one-task step would run it; up to
`workers` items run at once. Every process is started and waited for from the main thread, because
only the main thread may handle the stop signals that must reach them (see `child.py`).

What is gathered goes where `dsl.Collected` expects it: each output parameter of a body task as a
list in item order (in `outputs.json`), each output artifact of item i under `<folder>/<i>/<name>`.
A failed item does not stop the others; the step fails afterwards, naming every failed item.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from kubesage.util.privileges import Account

_POLL_SECONDS = 0.05


def workers(parallelism: int | None, cores: int | None = None) -> int:
    """How many items run at once: the instance's cores, bounded by the loop's `parallelism` if given."""
    available = cores or os.cpu_count() or 1
    return max(1, min(available, parallelism) if parallelism else available)


def loop_items(value: Any) -> list[Any]:
    """The items as the shim received them: a JSON list (text), or already a list."""
    items = json.loads(value) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError(f"the loop's items are not a list: {value!r}")
    return items


def as_declared(value: Any, parameter_type: str) -> Any:
    """A loop item (or a field of one) as the body task declares it: KFP hands items over as values."""
    from kubesage.runners.sagemaker.shim import cast_parameter, typed_constant

    if parameter_type == "STRING":
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str):
        return cast_parameter(value, parameter_type)
    return typed_constant(value, parameter_type)


def item_field(item: Any, name: str | None) -> Any:
    if name is None:
        return item
    record = json.loads(item) if isinstance(item, str) else item
    if not isinstance(record, dict) or name not in record:
        raise ValueError(f"loop item {item!r} has no field {name!r}")
    return record[name]


@dataclass
class ItemRun:
    """One item going through the body: which body task is next, what the finished ones produced."""

    index: int
    item: Any
    next_task: int = 0
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor_input: dict[str, Any] | None = None
    process: subprocess.Popen[bytes] | None = None
    failure: str | None = None


class FanOut:
    """The fan-out section of the task spec, applied to one item at a time."""

    def __init__(self, spec: Mapping[str, Any], outer: Mapping[str, Any], workdir: Path) -> None:
        self.spec = spec
        self.plan: Mapping[str, Any] = spec["fan_out"]
        self.outer_values: Mapping[str, Any] = outer["inputs"]["parameterValues"]
        self.outer_artifacts: Mapping[str, Any] = outer["inputs"]["artifacts"]
        self.workdir = workdir
        self.folders = {(task, out): folder for folder, (task, out) in self.plan["collected_artifacts"].items()}

    def body_dir(self, run: ItemRun, task: str) -> Path:
        return self.workdir / "items" / str(run.index) / task

    def artifact_path(self, run: ItemRun, task: str, output: str) -> str:
        folder = self.spec["output_artifacts"][self.folders[(task, output)]]["path"]
        return f"{folder}/{run.index}/{output}"

    def parameter(self, run: ItemRun, ref: Mapping[str, Any], declared: str) -> Any:
        if "item" in ref:
            return as_declared(item_field(run.item, ref["item"]), declared)
        if "constant" in ref:
            return as_declared(ref["constant"], declared) if ref["constant"] is not None else None
        if "param" in ref:
            return self.outer_values[ref["param"]]
        value = run.outputs[ref["task"]]["parameters"][ref["output"]]
        # outputs.json keeps lists and dicts as JSON text (for JsonGet); a body task gets the value
        return json.loads(value) if declared in ("LIST", "STRUCT") and isinstance(value, str) else value

    def executor_input(self, run: ItemRun, body: Mapping[str, Any]) -> dict[str, Any]:
        """KFP's ExecutorInput for one body task and one item."""
        from kubesage.runners.sagemaker.shim import EXECUTOR_OUTPUT, typed_constant

        component = body["component"]
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        values = {
            name: self.parameter(run, ref, declared.get(name, {}).get("parameterType", "STRING"))
            for name, ref in body["inputs"].items()
        }
        for name, pdef in declared.items():
            if name not in values and "defaultValue" in pdef:
                values[name] = typed_constant(pdef["defaultValue"], pdef.get("parameterType", ""))
        types = component.get("inputDefinitions", {}).get("artifacts", {})
        artifacts = {}
        for name, ref in body["artifacts"].items():
            if "channel" in ref:
                uri = self.outer_artifacts[ref["channel"]]["artifacts"][0]["uri"]
            else:
                uri = self.artifact_path(run, ref["task"], ref["output"])
            artifact_type = types.get(name, {}).get("artifactType", {})
            artifacts[name] = {"artifacts": [{"name": name, "type": artifact_type, "uri": uri, "metadata": {}}]}
        workdir = self.body_dir(run, body["task"])
        outputs = component.get("outputDefinitions", {})
        return {
            "inputs": {"parameterValues": values, "artifacts": artifacts},
            "outputs": {
                "parameters": {
                    n: {"outputFile": str(workdir / "parameters" / n)} for n in outputs.get("parameters", {})
                },
                "artifacts": {
                    n: {
                        "artifacts": [
                            {
                                "name": n,
                                "type": a["artifactType"],
                                "uri": self.artifact_path(run, body["task"], n),
                                "metadata": {},
                            }
                        ]
                    }
                    for n, a in outputs.get("artifacts", {}).items()
                },
                "outputFile": str(workdir / EXECUTOR_OUTPUT),
            },
        }

    def command(self, run: ItemRun, body: Mapping[str, Any], executor_input: dict[str, Any]) -> list[str]:
        from kubesage.runners.sagemaker.shim import resolve_command

        task_spec = {
            **body,
            "pipeline": self.spec["pipeline"],
            "task": f"{self.spec['task']}-{run.index}-{body['task']}",
        }
        return resolve_command(task_spec, executor_input)

    def prepare(self, runs: list[ItemRun]) -> list[Path]:
        """Every folder the body writes, created before the step's user is given them."""
        folders = []
        for run in runs:
            for body in self.plan["body"]:
                folders.append(self.body_dir(run, body["task"]) / "parameters")
                for name in body["component"].get("outputDefinitions", {}).get("artifacts", {}):
                    folders.append(Path(self.artifact_path(run, body["task"], name)).parent)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        return folders

    def gathered(self, runs: list[ItemRun]) -> dict[str, Any]:
        """outputs.json of the step: each body output parameter as a list in item order."""
        parameters = {}
        for key, (task, output) in self.plan["collected"].items():
            declared = next(b for b in self.plan["body"] if b["task"] == task)["component"]["outputDefinitions"]
            ptype = declared["parameters"][output].get("parameterType", "STRING")
            values = [run.outputs[task]["parameters"].get(output) for run in runs]
            if ptype in ("LIST", "STRUCT"):
                values = [json.loads(v) if isinstance(v, str) else v for v in values]
            parameters[key] = json.dumps(values)
        return {"task": self.spec["task"], "parameters": parameters, "artifacts": {}, "items": len(runs)}


def _popen(command: list[str], env: Mapping[str, str], account: Account | None) -> subprocess.Popen[bytes]:
    user = {"user": account.uid, "group": account.gid, "extra_groups": []} if account else {}
    return subprocess.Popen(command, env=dict(env), **user)  # type: ignore[call-overload]


def _start_next(fan: FanOut, run: ItemRun, env: Mapping[str, str], account: Account | None) -> None:
    body = fan.plan["body"][run.next_task]
    try:
        run.executor_input = fan.executor_input(run, body)
        command = fan.command(run, body, run.executor_input)
    except (ValueError, KeyError) as exc:
        run.failure = f"task '{body['task']}': {exc}"
        return
    from kubesage.tracking import ENV_STEP_RUN_ID_FILE

    # each item's task opens its own MLflow run: one run-id file per process, not the step's shared one
    run_id_file = str(fan.body_dir(run, body["task"]) / "mlflow-run-id")
    run.process = _popen(command, {**env, **body["env"], ENV_STEP_RUN_ID_FILE: run_id_file}, account)


def _finish(fan: FanOut, run: ItemRun, returncode: int) -> None:
    from kubesage.errors import RunnerError
    from kubesage.runners.sagemaker.shim import collect_outputs

    body = fan.plan["body"][run.next_task]
    run.process = None
    if returncode != 0:
        run.failure = f"task '{body['task']}' exited with {returncode}"
        return
    assert run.executor_input is not None
    try:
        run.outputs[body["task"]] = collect_outputs({**body, "task": body["task"]}, run.executor_input)
    except (RunnerError, ValueError) as exc:
        run.failure = f"task '{body['task']}': {exc}"
        return
    run.next_task += 1


def run_items(
    fan: FanOut, runs: list[ItemRun], env: Mapping[str, str], account: Account | None, limit: int
) -> int | None:
    """Run every item through the body, `limit` at once; the stop signal if the job was stopped."""
    received: list[int] = []
    active: list[ItemRun] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        for run in active:
            if run.process is not None and run.process.poll() is None:
                run.process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    waiting = list(runs)
    try:
        while (waiting or active) and not (received and not active):
            while waiting and len(active) < limit and not received:
                active.append(waiting.pop(0))
            for run in list(active):
                idle = run.process is None and run.failure is None and run.next_task < len(fan.plan["body"])
                if idle and received:  # stopped: start nothing more
                    run.failure = f"stopped by {signal.Signals(received[0]).name} before its next task"
                elif idle:
                    _start_next(fan, run, env, account)
                    if received and run.process is not None:  # the stop came while it was starting
                        run.process.send_signal(received[0])
                if run.process is not None and (code := run.process.poll()) is not None:
                    _finish(fan, run, code)
                if run.failure is not None or run.next_task == len(fan.plan["body"]):
                    active.remove(run)
            time.sleep(_POLL_SECONDS)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else None


def run_fan_out(
    spec: Mapping[str, Any],
    outer: Mapping[str, Any],
    workdir: Path,
    env: Mapping[str, str],
    account: Account | None,
    cores: int | None = None,
) -> int:
    """Run the loop; write outputs.json if every item succeeded. The shim's exit code."""
    from kubesage.errors import RunnerError
    from kubesage.runners.sagemaker.ir import ITEMS_PARAMETER
    from kubesage.runners.sagemaker.shim import write_new_file
    from kubesage.util.privileges import hand_over

    task = spec["task"]
    fan = FanOut(spec, outer, workdir)
    try:
        items = loop_items(fan.outer_values[ITEMS_PARAMETER])
    except (ValueError, KeyError) as exc:
        print(f"kubesage shim: fan-out '{task}': {exc}", file=sys.stderr)
        return 2
    runs = [ItemRun(index, item) for index, item in enumerate(items)]
    folders = fan.prepare(runs)
    if account is not None:
        hand_over([workdir / "items", *folders], account)
    limit = workers(fan.plan.get("parallelism"), cores)
    print(f"kubesage shim: fan-out '{task}': {len(runs)} items, up to {limit} at once", flush=True)
    stopped = run_items(fan, runs, env, account, limit)
    if stopped is not None:
        print(f"kubesage shim: fan-out '{task}' stopped by {signal.Signals(stopped).name}", file=sys.stderr)
        return 128 + stopped
    failed = [run for run in runs if run.failure is not None]
    if failed:
        detail = "; ".join(f"item {run.index} ({json.dumps(run.item)}): {run.failure}" for run in failed)
        print(f"kubesage shim: fan-out '{task}': {len(failed)} of {len(runs)} items failed: {detail}", file=sys.stderr)
        return 1
    try:
        write_new_file(Path(spec["outputs_file"]), json.dumps(fan.gathered(runs), indent=2, sort_keys=True))
    except RunnerError as exc:
        print(f"kubesage shim: fan-out '{task}': {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"kubesage shim: fan-out '{task}': {len(runs)} items succeeded", flush=True)
    return 0
