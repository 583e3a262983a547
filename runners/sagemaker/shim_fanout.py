"""Inside a fan-out step's job (`fanout.py`): run the loop body once per item, in parallel processes.

The shim has already resolved the step's own inputs (the items, outer parameters, input channels)
into `outer`, KFP's executor input of the step. Each item then walks the body's DAG as KFP scopes
it (`ItemWalk`): a container task runs as its own process with its own KFP executor input, exactly
as a one-task step would run it; a `dsl.If/Elif/Else` is evaluated with cel-python on the item's
values (false: nothing inside runs, as in KFP); a nested loop runs its iterations one after another
inside the item; a sub-pipeline is a DAG with its own inputs. Up to `workers` items run at once.
Every process is started and waited for from the main thread, because only the main thread may
handle the stop signals that must reach them (see `child.py`).

What is gathered goes where `dsl.Collected` expects it: each output parameter of the body as a list
in item order (in `outputs.json`; a nested loop's as a list per iteration, as kfp.local gives), each
output artifact under `<folder>/<k>/<name>` (nested loops flattened in item order, as KFP's driver
collects them). A body output that an item did not produce (its task's dsl.If was false) fails that
item, as kfp.local fails the run. A failed item does not stop the others; the step fails afterwards,
naming every failed item.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Mapping
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


class ItemError(Exception):
    """An item cannot go on: an input without a value, a condition that cannot be evaluated."""


@dataclass(frozen=True)
class Launch:
    """One container task of one item, ready to start: `label` is its path in the body."""

    body: Mapping[str, Any]
    label: str
    executor_input: dict[str, Any]
    command: list[str]
    workdir: Path


@dataclass
class NodeResult:
    """What a task or a DAG produced for one item: parameter values (decoded) and artifact URIs
    (a loop's: one per iteration, nested as the loops are)."""

    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scope:
    """The inputs of the DAG being walked, as KFP binds them: values as they are (an item stays a dict)."""

    parameters: dict[str, Any]
    artifacts: dict[str, Any]


# A walk yields the next container task to start and is sent what it produced.
Walk = Generator[Launch, NodeResult, Any]


@dataclass
class ItemRun:
    """One item going through the body: its walk, the running task, what the body produced."""

    index: int
    item: Any
    walk: Walk | None = None
    launch: Launch | None = None
    process: subprocess.Popen[bytes] | None = None
    result: NodeResult | None = None  # the last task's outputs, sent to the walk on its next turn
    failure: str | None = None
    outputs: NodeResult | None = None  # the body DAG's outputs, once the whole walk is done
    ran: list[str] = field(default_factory=list)  # the tasks that ran, by path, in order
    skipped: list[str] = field(default_factory=list)  # the dsl.If groups that were false, by path

    @property
    def finished(self) -> bool:
        return self.failure is not None or self.outputs is not None


class FanOut:
    """The fan-out section of the task spec, walked for one item at a time."""

    def __init__(self, spec: Mapping[str, Any], outer: Mapping[str, Any], workdir: Path) -> None:
        self.spec = spec
        self.plan: Mapping[str, Any] = spec["fan_out"]
        self.body: Mapping[str, Any] = self.plan["body"]
        self.outer_values: Mapping[str, Any] = outer["inputs"]["parameterValues"]
        self.outer_artifacts: Mapping[str, Any] = outer["inputs"]["artifacts"]
        self.workdir = workdir

    # ---- walking one item's DAG ------------------------------------------------------------------

    def top_scope(self, item: Any) -> Scope:
        """The loop body's inputs for one item: the item, the step's parameters and input channels."""
        parameters: dict[str, Any] = {}
        for name, ref in self.body["inputs"].items():
            if "item" in ref:
                parameters[name] = item_field(item, ref["item"])
            elif "constant" in ref:
                parameters[name] = ref["constant"]
            else:
                parameters[name] = self.outer_values[ref["param"]]
        artifacts = {
            name: self.outer_artifacts[ref["channel"]]["artifacts"][0]["uri"]
            for name, ref in self.body["artifacts"].items()
        }
        return Scope(parameters, artifacts)

    def walk_item(self, run: ItemRun) -> Walk:
        outputs: NodeResult = yield from self.walk_dag(run, self.body, self.top_scope(run.item), ())
        return outputs

    def walk_dag(self, run: ItemRun, group: Mapping[str, Any], scope: Scope, path: tuple[str, ...]) -> Walk:
        """Every member in run order; then the DAG's outputs, as KFP selects them."""
        results: dict[str, NodeResult | None] = {}  # None: a dsl.If that was false
        for member in group["members"]:
            if member["kind"] == "task":
                results[member["task"]] = yield from self.run_task(run, member, scope, results, path)
            else:
                results[member["task"]] = yield from self.walk_group(run, member, scope, results, path)
        return dag_outputs(group, results, "/".join(path) or self.spec["task"])

    def walk_group(
        self,
        run: ItemRun,
        group: Mapping[str, Any],
        scope: Scope,
        results: Mapping[str, NodeResult | None],
        path: tuple[str, ...],
    ) -> Walk:
        here = (*path, group["task"])
        label = "/".join(here)
        inner = Scope(
            {name: value(ref, scope, results, label) for name, ref in group["inputs"].items()},
            {name: artifact(ref, scope, results, label) for name, ref in group["artifacts"].items()},
        )
        if group["kind"] == "condition":
            from kubesage.runners.sagemaker import cel

            try:
                taken = cel.evaluate(group["condition"], inner.parameters)
            except ValueError as exc:
                raise ItemError(f"dsl.If '{label}': {exc}") from exc
            if not taken:
                run.skipped.append(label)
                return None
        if group["kind"] != "loop":
            found: NodeResult = yield from self.walk_dag(run, group, inner, here)
            return found
        items = group["items"]
        try:
            listed = items["raw"] if "raw" in items else loop_items(inner.parameters[items["input"]])
        except (ValueError, KeyError) as exc:
            raise ItemError(f"dsl.ParallelFor '{label}': {exc}") from exc
        iterations: list[NodeResult] = []
        # a nested loop's iterations run one after another inside the item: the job's cores go to the items
        for index, item in enumerate(listed):
            child = Scope({**inner.parameters, group["item_input"]: item}, dict(inner.artifacts))
            iterations.append((yield from self.walk_dag(run, group, child, (*here, str(index)))))
        return NodeResult(
            {name: [it.parameters[name] for it in iterations] for name in group["outputs"]},
            {name: [it.artifacts[name] for it in iterations] for name in group["output_artifacts"]},
        )

    def run_task(
        self,
        run: ItemRun,
        body: Mapping[str, Any],
        scope: Scope,
        results: Mapping[str, NodeResult | None],
        path: tuple[str, ...],
    ) -> Walk:
        label = "/".join((*path, body["task"]))
        workdir = self.workdir / "items" / str(run.index) / Path(*path, body["task"])
        try:
            executor_input = self.executor_input(body, scope, results, label, workdir)
            command = self.command(run, body, label, executor_input)
        except (ValueError, KeyError) as exc:
            raise ItemError(f"task '{label}': {exc}") from exc
        produced: NodeResult = yield Launch(body, label, executor_input, command, workdir)
        return produced

    def executor_input(
        self,
        body: Mapping[str, Any],
        scope: Scope,
        results: Mapping[str, NodeResult | None],
        label: str,
        workdir: Path,
    ) -> dict[str, Any]:
        """KFP's ExecutorInput for one body task and one item."""
        from kubesage.runners.sagemaker.shim import EXECUTOR_OUTPUT, typed_constant

        component = body["component"]
        declared = component.get("inputDefinitions", {}).get("parameters", {})
        values = {}
        for name, ref in body["inputs"].items():
            found = value(ref, scope, results, label)
            ptype = declared.get(name, {}).get("parameterType", "STRING")
            values[name] = None if found is None else as_declared(found, ptype)
        for name, pdef in declared.items():
            if name not in values and "defaultValue" in pdef:
                values[name] = typed_constant(pdef["defaultValue"], pdef.get("parameterType", ""))
        types = component.get("inputDefinitions", {}).get("artifacts", {})
        artifacts = {}
        for name, ref in body["artifacts"].items():
            uri = artifact(ref, scope, results, label)
            if not isinstance(uri, str):
                raise ItemError(f"task '{label}': input artifact '{name}' is a list, which this task does not take")
            artifact_type = types.get(name, {}).get("artifactType", {})
            artifacts[name] = {"artifacts": [{"name": name, "type": artifact_type, "uri": uri, "metadata": {}}]}
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
                                "uri": str(workdir / "artifacts" / n),
                                "metadata": {},
                            }
                        ]
                    }
                    for n, a in outputs.get("artifacts", {}).items()
                },
                "outputFile": str(workdir / EXECUTOR_OUTPUT),
            },
        }

    def command(self, run: ItemRun, body: Mapping[str, Any], label: str, executor_input: dict[str, Any]) -> list[str]:
        from kubesage.runners.sagemaker.shim import resolve_command

        task_spec = {
            **body,
            "pipeline": self.spec["pipeline"],
            "task": f"{self.spec['task']}-{run.index}-{label.replace('/', '-')}",
        }
        return resolve_command(task_spec, executor_input)

    # ---- what the step gathers -------------------------------------------------------------------

    def gathered(self, runs: list[ItemRun]) -> dict[str, Any]:
        """outputs.json of the step: each body output parameter as a list in item order; each
        collected artifact moved to `<folder>/<k>/<file>`, k counting every artifact in item order."""
        outputs = [run.outputs or NodeResult() for run in runs]
        parameters = {
            key: json.dumps([o.parameters[name] for o in outputs]) for key, name in self.plan["collected"].items()
        }
        placed: dict[str, Path] = {}
        for folder, name in self.plan["collected_artifacts"].items():
            target = Path(self.spec["output_artifacts"][folder]["path"])
            uris = _flattened([o.artifacts[name] for o in outputs])
            for k, uri in enumerate(uris):
                _place(Path(uri), target / str(k) / self.plan["artifact_files"][folder], placed)
        return {"task": self.spec["task"], "parameters": parameters, "artifacts": {}, "items": len(runs)}


def value(ref: Mapping[str, Any], scope: Scope, results: Mapping[str, NodeResult | None], label: str) -> Any:
    """A parameter reference resolved in the DAG being walked (see `BodyTask` for the kinds)."""
    if "constant" in ref:
        return ref["constant"]
    if "input" in ref:
        if ref["input"] not in scope.parameters:
            raise ItemError(f"'{label}' reads input '{ref['input']}', which its DAG was not given")
        try:
            return item_field(scope.parameters[ref["input"]], ref.get("field"))
        except ValueError as exc:
            raise ItemError(f"'{label}': {exc}") from exc
    produced = results.get(ref["task"])
    if produced is None or ref["output"] not in produced.parameters:
        raise ItemError(f"'{label}' reads output '{ref['output']}' of '{ref['task']}', which did not run for this item")
    return produced.parameters[ref["output"]]


def artifact(ref: Mapping[str, Any], scope: Scope, results: Mapping[str, NodeResult | None], label: str) -> Any:
    if "input" in ref:
        if ref["input"] not in scope.artifacts:
            raise ItemError(f"'{label}' reads artifact '{ref['input']}', which its DAG was not given")
        return scope.artifacts[ref["input"]]
    produced = results.get(ref["task"])
    if produced is None or ref["output"] not in produced.artifacts:
        raise ItemError(
            f"'{label}' reads artifact '{ref['output']}' of '{ref['task']}', which did not run for this item"
        )
    return produced.artifacts[ref["output"]]


def dag_outputs(group: Mapping[str, Any], results: Mapping[str, NodeResult | None], label: str) -> NodeResult:
    """A DAG's outputs as its selectors name them: the one member output, or (dsl.OneOf) the one that ran.

    An output whose producer did not run (its dsl.If was false) has no value, and KFP's local runner
    fails the loop iteration then; so does this item."""

    def pick(name: str, sources: list[list[str]], kind: str) -> Any:
        for member, key in sources:
            produced = results.get(member)
            found = None if produced is None else getattr(produced, kind).get(key)
            if found is not None or (produced is not None and key in getattr(produced, kind)):
                return found
        names = ", ".join(member for member, _ in sources)
        raise ItemError(
            f"'{label}' has no value for its output '{name}' (dsl.Collected or dsl.OneOf): {names} did not run for "
            "this item, because its dsl.If was false; KFP's local runner fails the same way. Collect only outputs "
            "every item produces (give the skipped branch an output with dsl.OneOf)"
        )

    return NodeResult(
        {name: pick(name, sources, "parameters") for name, sources in group["outputs"].items()},
        {name: pick(name, sources, "artifacts") for name, sources in group["output_artifacts"].items()},
    )


def _flattened(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for v in values:
        flat += _flattened(v) if isinstance(v, list) else [v]
    return flat


def _place(source: Path, target: Path, placed: dict[str, Path]) -> None:
    """Move an artifact (file or folder) to where the step's output folder holds it; copy if already moved."""
    target.parent.mkdir(parents=True, exist_ok=True)
    earlier = placed.get(str(source))
    if earlier is None:
        shutil.move(str(source), str(target))
        placed[str(source)] = target
    elif earlier.is_dir():
        shutil.copytree(earlier, target)
    else:
        shutil.copy2(earlier, target)


def _popen(command: list[str], env: Mapping[str, str], account: Account | None) -> subprocess.Popen[bytes]:
    user = {"user": account.uid, "group": account.gid, "extra_groups": []} if account else {}
    return subprocess.Popen(command, env=dict(env), **user)  # type: ignore[call-overload]


def _advance(fan: FanOut, run: ItemRun, env: Mapping[str, str], account: Account | None) -> None:
    """Walk the item on to its next container task and start it (or finish the item)."""
    try:
        if run.walk is None:
            run.walk = fan.walk_item(run)
            launch = next(run.walk)
        else:
            assert run.result is not None
            launch = run.walk.send(run.result)
    except StopIteration as done:
        run.outputs = done.value
        return
    except ItemError as exc:
        run.failure = str(exc)
        return
    finally:
        run.result = None
    from kubesage.tracking import ENV_STEP_RUN_ID_FILE
    from kubesage.util.privileges import hand_over

    folders = [launch.workdir / "parameters", launch.workdir / "artifacts"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    if account is not None:
        hand_over([launch.workdir], account)
    run.launch = launch
    run.ran.append(launch.label)
    # each item's task opens its own MLflow run: one run-id file per process, not the step's shared one
    run_id_file = str(launch.workdir / "mlflow-run-id")
    run.process = _popen(launch.command, {**env, **launch.body["env"], ENV_STEP_RUN_ID_FILE: run_id_file}, account)


def _finish(run: ItemRun, returncode: int) -> None:
    from kubesage.errors import RunnerError
    from kubesage.runners.sagemaker.shim import collect_outputs

    launch = run.launch
    assert launch is not None
    run.process = None
    run.launch = None
    if returncode != 0:
        run.failure = f"task '{launch.label}' exited with {returncode}"
        return
    body = launch.body
    try:
        collected = collect_outputs({**body, "task": body["task"]}, launch.executor_input)
    except (RunnerError, ValueError) as exc:
        run.failure = f"task '{launch.label}': {exc}"
        return
    declared = body["component"].get("outputDefinitions", {}).get("parameters", {})
    parameters = {
        # outputs.json keeps lists and dicts as JSON text (for JsonGet); inside the job they are values
        name: json.loads(v)
        if declared.get(name, {}).get("parameterType") in ("LIST", "STRUCT") and isinstance(v, str)
        else v
        for name, v in collected["parameters"].items()
    }
    artifacts = {
        name: entry["artifacts"][0]["uri"] for name, entry in launch.executor_input["outputs"]["artifacts"].items()
    }
    run.result = NodeResult(parameters, artifacts)


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
                idle = run.process is None and not run.finished
                if idle and received:  # stopped: start nothing more
                    run.failure = f"stopped by {signal.Signals(received[0]).name} before its next task"
                elif idle:
                    _advance(fan, run, env, account)
                    if received and run.process is not None:  # the stop came while it was starting
                        run.process.send_signal(received[0])
                if run.process is not None and (code := run.process.poll()) is not None:
                    _finish(run, code)
                if run.finished:
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
    if account is not None:
        hand_over([workdir / "items"], account)
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
    except OSError as exc:  # moving an item's artifact into the step's output folder
        print(f"kubesage shim: fan-out '{task}': gathering the artifacts failed: {exc}", file=sys.stderr)
        return 1
    for run in runs:
        if run.skipped:  # what KFP's UI would show as skipped branches, per item
            print(f"kubesage shim: fan-out '{task}': item {run.index}: dsl.If false, skipped {', '.join(run.skipped)}")
    print(f"kubesage shim: fan-out '{task}': {len(runs)} items succeeded", flush=True)
    return 0
