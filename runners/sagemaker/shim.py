"""In-container entry point of every compiled SageMaker step: run a KFP component from SageMaker paths.

    python3 -m kubesage.runners.sagemaker.shim --task T --spec-dir DIR --spec-sha256 HEX
                                               [--param NAME VALUE]... [--data-param NAME DIR URI]...
                                               [--param-item NAME TYPE VALUE]...

It reads the task spec the compiler wrote (the component's command, constants, where SageMaker put
inputs and wants outputs) after checking it against the sha256 the pipeline definition pins
(`integrity.py`), builds KFP's executor input from those paths, resolves the command's placeholders
with KFP's own code, runs it (as the image's unprivileged user, forwarding stop signals: `child.py`),
and writes the output parameters and artifact metadata to `outputs.json`, which downstream steps
read through PropertyFile + JsonGet.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import tarfile
from pathlib import Path
from typing import Any

from kubesage.errors import DataError, RunnerError, SpecIntegrityError
from kubesage.runners.sagemaker import pod_fields
from kubesage.runners.sagemaker.child import child_environment, close_stopped_run, run_child
from kubesage.runners.sagemaker.fetch import fetch_inputs
from kubesage.runners.sagemaker.integrity import DIGEST_FLAG, read_verified_spec
from kubesage.runners.sagemaker.secret_env import resolve_environment
from kubesage.runners.sagemaker.secret_files import write_from_environment
from kubesage.runners.sagemaker.shim_fanout import run_fan_out
from kubesage.tracking import tracking_uri
from kubesage.tracking.contract import HANDOFF_ENV
from kubesage.util.privileges import grant_read, hand_over, step_account

EXECUTOR_OUTPUT = "executor_output.json"
# Tracking variables arrive as pipeline parameters whose default is ""; an empty
# MLFLOW_TRACKING_URI would point MLflow at the wrong place, so they are dropped.
_DROP_IF_EMPTY = HANDOFF_ENV


def cast_parameter(value: str, parameter_type: str) -> Any:
    """A command-line string back to the component's declared type."""
    if parameter_type == "STRING":
        return value
    if parameter_type == "NUMBER_INTEGER":
        return int(float(value))
    if parameter_type == "NUMBER_DOUBLE":
        return float(value)
    if parameter_type == "BOOLEAN":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f"expected true or false, got {value!r}")
        return lowered == "true"
    return json.loads(value)


def typed_constant(value: Any, parameter_type: str) -> Any:
    """A constant or default from the IR, typed as declared: the IR holds every number as a protobuf
    double (`1.0`), and KFP's backend hands an NUMBER_INTEGER input an int. Without this, a constant
    reaching an inlined sub-pipeline's int input arrived as 1.0 (found by tests/conformance/)."""
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    if parameter_type == "NUMBER_DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _single_entry(directory: Path) -> Path:
    """An imported artifact's channel holds one object: hand the task that file."""
    entries = sorted(p for p in directory.iterdir())
    return entries[0] if len(entries) == 1 else directory


def data_path(directory: Path, uri: str) -> Path:
    """What the task gets for a data parameter: the object the URI names, not its prefix neighbours.

    SageMaker's S3Prefix input downloads every key that starts with the URI, so `s3://b/churn.txt`
    also brings `churn.txt.bak`, and `s3://b/data` brings `data2/`. The object's own name is picked:
    a file named like the URI's last segment (the object), else a folder of that name (a prefix
    without a trailing slash); a URI ending in '/' means the whole folder.
    """
    if uri.endswith("/"):
        return directory
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if name and (directory / name).exists():
        return directory / name
    # SDK local mode lays a prefix's keys out relative to the prefix itself.
    entries = sorted(directory.iterdir()) if directory.is_dir() else []
    return entries[0] if len(entries) == 1 and entries[0].is_file() else directory


def collected_paths(directory: Path, file: str) -> list[Path]:
    """Each item's artifact in a gathered folder, in item order: `<dir>/0/<file>`, `<dir>/1/<file>`, ..."""
    indices = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []
    return [directory / str(index) / file for index in indices]


def unpack_model(directory: Path, name: str) -> Path:
    """SageMaker delivers a training job's /opt/ml/model as model.tar.gz; give KFP the directory."""
    archive = directory / "model.tar.gz"
    target = directory.parent / f"{directory.name}-unpacked"
    if not archive.is_file():
        raise FileNotFoundError(f"input artifact '{name}': expected {archive} from the training step")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:  # Python < 3.11.4 (some images): refuse members that would escape the target
            root = target.resolve()
            for member in tar.getmembers():
                dest = (target / member.name).resolve()
                if (dest != root and root not in dest.parents) or member.issym() or member.islnk():
                    raise ValueError(f"input artifact '{name}': unsafe member {member.name!r} in {archive}")
            tar.extractall(target)
    return target


def build_executor_input(
    spec: dict[str, Any],
    params: dict[str, str],
    data_params: dict[str, tuple[str, str]],
    workdir: Path,
    items: list[list[str]] | None = None,
) -> dict[str, Any]:
    """KFP's ExecutorInput (as JSON) for this task, pointing at SageMaker's directories."""
    declared = spec["component"].get("inputDefinitions", {}).get("parameters", {})
    values: dict[str, Any] = {
        name: typed_constant(value, declared.get(name, {}).get("parameterType", ""))
        for name, value in spec["constants"].items()
    }
    for name, raw in params.items():
        values[name] = cast_parameter(raw, declared.get(name, {}).get("parameterType", "STRING"))
    # dsl.Collected over an unrolled loop: one --param-item per iteration, in order, typed like its producer
    for name, item_type, raw in items or []:
        values.setdefault(name, []).append(cast_parameter(raw, item_type))
    for name, (download_dir, uri) in data_params.items():
        values[name] = str(data_path(Path(download_dir), uri))
    for name, pdef in declared.items():
        if name not in values and "defaultValue" in pdef:
            values[name] = typed_constant(pdef["defaultValue"], pdef.get("parameterType", ""))
    artifacts: dict[str, Any] = {}
    for name, art in spec["input_artifacts"].items():
        directory = Path(art["dir"])
        path: Path
        if art.get("list"):  # dsl.Collected of artifacts: one folder holding `<i>/<file>` per item
            artifacts[name] = {
                "artifacts": [
                    {"name": name, "type": art["type"], "uri": str(path), "metadata": {}}
                    for path in collected_paths(directory, art["file"])
                ]
            }
            continue
        if art["packed"]:
            path = unpack_model(directory, name)
        else:  # an imported S3 URI known only at run time has no file name in the spec: take what arrived
            path = directory / art["file"] if art["file"] else _single_entry(directory)
        artifacts[name] = {"artifacts": [{"name": name, "type": art["type"], "uri": str(path), "metadata": {}}]}
    outputs = {
        name: {"artifacts": [{"name": name, "type": art["type"], "uri": art["path"], "metadata": {}}]}
        for name, art in spec["output_artifacts"].items()
    }
    output_params = spec["component"].get("outputDefinitions", {}).get("parameters", {})
    return {
        "inputs": {"parameterValues": values, "artifacts": artifacts},
        "outputs": {
            "parameters": {name: {"outputFile": str(workdir / "parameters" / name)} for name in output_params},
            "artifacts": outputs,
            "outputFile": str(workdir / EXECUTOR_OUTPUT),
        },
    }


def resolve_command(spec: dict[str, Any], executor_input: dict[str, Any]) -> list[str]:
    """The component's command with KFP placeholders replaced, by KFP's own local-runner code."""
    from kfp.local import placeholder_utils

    resolved: list[str] = placeholder_utils.replace_placeholders(
        full_command=[*spec["command"], *spec["args"]],
        executor_input_dict=executor_input,
        pipeline_resource_name=spec["pipeline"],
        task_resource_name=spec["task"],
        pipeline_root=str(Path(executor_input["outputs"]["outputFile"]).parent),
        unique_pipeline_id=os.environ.get("KUBESAGE_SAGEMAKER_EXECUTION_ARN", spec["pipeline"]),
    )
    return resolved


def _no_links(path: Path) -> None:
    """Refuse a path with a symbolic link anywhere in it: the unprivileged step wrote these folders."""
    absolute = path.absolute()
    if os.path.realpath(absolute.parent) != str(absolute.parent) or absolute.is_symlink():
        raise RunnerError(f"{path} is or goes through a symbolic link, which the step made; refusing to follow it")


def read_step_file(path: Path) -> str | None:
    """The text of a regular file the step wrote, or None if there is none; never through a symlink.

    The shim runs as root and the step as an unprivileged user who owns its output folders: a link
    it planted (to /etc/shadow, a root-only credential) must not be read and published in outputs.json.
    """
    _no_links(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: the last component became a link after the check
        raise RunnerError(f"cannot read {path} without following a link ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise RunnerError(f"{path} is not a regular file (a FIFO, device or folder the step made); refusing it")
        return handle.read().decode("utf-8")


def write_new_file(path: Path, text: str) -> None:
    """Write `text` as root to a new file at `path`, replacing whatever (a planted link) was there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _no_links(path.parent / "_")
    if path.is_symlink() or path.exists():
        path.unlink()  # a link is removed, never written through
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def collect_outputs(spec: dict[str, Any], executor_input: dict[str, Any]) -> dict[str, Any]:
    """Output parameters and artifact metadata, from the executor output and the output files."""
    out_file = Path(executor_input["outputs"]["outputFile"])
    text = read_step_file(out_file)
    executor_output = json.loads(text) if text is not None else {}
    parameters: dict[str, Any] = dict(executor_output.get("parameterValues", {}))
    declared = spec["component"].get("outputDefinitions", {}).get("parameters", {})
    for name, target in executor_input["outputs"]["parameters"].items():
        value = None if name in parameters else read_step_file(Path(target["outputFile"]))
        if value is not None:
            ptype = declared.get(name, {}).get("parameterType", "STRING")
            parameters[name] = value if ptype == "STRING" else json.loads(value)
    for name, value in parameters.items():
        # lists and dicts reach downstream steps through JsonGet as text: keep them JSON, the reader decodes
        if declared.get(name, {}).get("parameterType") in ("LIST", "STRUCT") and not isinstance(value, str):
            parameters[name] = json.dumps(value)
    metadata = {
        name: (entry.get("artifacts") or [{}])[0].get("metadata", {})
        for name, entry in executor_output.get("artifacts", {}).items()
    }
    return {"task": spec["task"], "parameters": parameters, "artifacts": metadata}


# Options the compiler emits with a fixed number of values. A value may start with '-' (a negative
# number such as -1e-05, or any string), which argparse would take for an option, so these are
# split off verbatim before argparse parses the rest.
_VALUE_OPTIONS = {
    "--param": 2,
    "--data-param": 3,
    "--param-item": 3,
    "--upstream-status": 2,
    "--final-status": 2,
    "--handler-status": 2,
    "--upstream-completed": 2,
    "--input-from": 2,
}


def split_value_options(argv: list[str]) -> tuple[list[str], dict[str, list[list[str]]]]:
    """(the other arguments, option -> its value lists); a short value list is a usage error."""
    rest: list[str] = []
    found: dict[str, list[list[str]]] = {option: [] for option in _VALUE_OPTIONS}
    index = 0
    while index < len(argv):
        token = argv[index]
        count = _VALUE_OPTIONS.get(token)
        if count is None:
            rest.append(token)
            index += 1
            continue
        values = argv[index + 1 : index + 1 + count]
        if len(values) != count:
            raise ValueError(f"{token} takes {count} values, got {values}")
        found[token].append(values)
        index += 1 + count
    return rest, found


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubesage.runners.sagemaker.shim")
    parser.add_argument("--task", required=True)
    parser.add_argument("--spec-dir", required=True, type=Path)
    parser.add_argument(DIGEST_FLAG, required=True, dest="spec_sha256", metavar="HEX")
    parser.add_argument("--workdir", type=Path, default=None)
    # inside a dsl.ExitHandler: record a failure in outputs.json and end the job successfully
    parser.add_argument("--continue-on-failure", action="store_true")
    try:
        rest, values = split_value_options(list(sys.argv[1:] if argv is None else argv))
    except ValueError as exc:
        parser.error(str(exc))
    args = parser.parse_args(rest)
    args.param = {name: value for name, value in values["--param"]}
    args.data_param = {name: (directory, uri) for name, directory, uri in values["--data-param"]}
    args.param_item = values["--param-item"]
    args.upstream_status = {name: status for name, status in values["--upstream-status"]}
    # ignore_upstream_failure: each upstream task's recorded status, and the inputs each gave
    args.upstream_completed = {name: status for name, status in values["--upstream-completed"]}
    args.input_from = [(name, task) for name, task in values["--input-from"]]
    handler_statuses = {name: status for name, status in values["--handler-status"]}
    for name, handler in values["--final-status"]:
        args.param[name] = json.dumps(final_status(handler, handler_statuses))
    return args


def inputs_at_default(upstream: dict[str, str], input_from: list[tuple[str, str]]) -> dict[str, str]:
    """ignore_upstream_failure: input -> the upstream task it came from, for each from one that did not
    succeed. KFP gives such an input its default (its SDK requires one), not the stand-in the failed task
    recorded."""
    return {name: task for name, task in input_from if upstream.get(task, "succeeded") != "succeeded"}


def drop_inputs(args: argparse.Namespace, spec: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The spec and runtime parameters without `names`: the executor then applies each input's default."""
    for name, task in sorted(names.items()):
        args.param.pop(name, None)
        status = args.upstream_completed.get(task)
        print(f"kubesage shim: task '{spec['task']}': input '{name}' takes its default ('{task}' {status})", flush=True)
    return {**spec, "input_artifacts": {k: v for k, v in spec["input_artifacts"].items() if k not in names}}


def final_status(handler: str, statuses: dict[str, str]) -> dict[str, Any]:
    """KFP's PipelineTaskFinalStatus of dsl.ExitHandler `handler` as the executor reads it, from the
    statuses its tasks recorded (succeeded, failed, skipped): SUCCEEDED only if every one succeeded."""
    not_ok = {task: status for task, status in sorted(statuses.items()) if status != "succeeded"}
    value: dict[str, Any] = {
        "state": "FAILED" if not_ok else "SUCCEEDED",
        "pipelineJobResourceName": os.environ.get("KUBESAGE_SAGEMAKER_EXECUTION_ARN", ""),
        "pipelineTaskName": handler,
        "error": {},
    }
    if not_ok:
        listed = ", ".join(f"{task}: {status}" for task, status in not_ok.items())
        value["error"] = {"message": f"tasks inside dsl.ExitHandler '{handler}' did not all succeed: {listed}"}
    return value


def _writable_folders(spec: dict[str, Any], workdir: Path) -> list[Path]:
    """What the component writes: its output artifacts' folders and the executor's workdir."""
    folders = [workdir]
    for art in spec["output_artifacts"].values():
        path = Path(art["path"])
        folders.append(path if path.is_dir() else path.parent)
    return folders


def _readable_folders(spec: dict[str, Any], data_params: dict[str, tuple[str, str]]) -> list[Path]:
    """What the component reads that the platform wrote as root: input artifacts (and their
    unpacked models) and downloaded data parameters."""
    folders = []
    for art in spec["input_artifacts"].values():
        directory = Path(art["dir"])
        folders += [directory, directory.parent / f"{directory.name}-unpacked"]
    folders += [Path(download_dir) for download_dir, _ in data_params.values()]
    return folders


def stand_in_outputs(spec: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
    """outputs.json of a task inside a dsl.ExitHandler that failed or was skipped.

    Every declared output parameter gets an empty value of its type and every output artifact an
    empty file, so the steps after it still resolve their JsonGets and S3 inputs (SageMaker fails a
    step whose input prefix is empty); they see `status` and skip themselves."""
    empty = {"STRING": "", "NUMBER_INTEGER": 0, "NUMBER_DOUBLE": 0.0, "BOOLEAN": False, "LIST": "[]", "STRUCT": "{}"}
    declared = spec["component"].get("outputDefinitions", {}).get("parameters", {})
    for art in spec["output_artifacts"].values():
        path = Path(art["path"])
        if not path.exists() and not path.is_symlink():
            write_new_file(path, "")
    return {
        "task": spec["task"],
        "parameters": {name: empty.get(p.get("parameterType", "STRING"), "") for name, p in declared.items()},
        "artifacts": {},
        "status": status,
        "failure": reason,
    }


def _record_instead_of_failing(spec: dict[str, Any], status: str, reason: str) -> int:
    print(f"kubesage shim: task '{spec['task']}' {status} ({reason}); recorded for the exit handler", file=sys.stderr)
    try:
        write_new_file(Path(spec["outputs_file"]), json.dumps(stand_in_outputs(spec, status, reason), indent=2))
    except RunnerError as exc:
        print(f"kubesage shim: task '{spec['task']}': {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


def _secrets_client() -> Any:
    """Secrets Manager with the job's own credentials and region (AWS_ENDPOINT_URL_SECRETS_MANAGER, when set,
    points it at a stand-in)."""
    import boto3

    return boto3.client("secretsmanager")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        spec = read_verified_spec(args.spec_dir / f"{args.task}.json", args.spec_sha256)
    except SpecIntegrityError as exc:
        print(f"kubesage shim: task '{args.task}': {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        # The secrets the definition names (never their values), read with the job role before any task code runs.
        secret_values = resolve_environment(os.environ, _secrets_client)
        secret_values.update(pod_fields.resolve_environment(os.environ))  # metadata.name: the job's name
    except RunnerError as exc:
        print(f"kubesage shim: task '{args.task}': {exc}", file=sys.stderr)
        return exc.exit_code
    not_ok = sorted(name for name, status in args.upstream_status.items() if status != "succeeded")
    if not_ok:
        return _record_instead_of_failing(spec, "skipped", f"upstream {', '.join(not_ok)} did not succeed")
    spec = drop_inputs(args, spec, inputs_at_default(args.upstream_completed, args.input_from))
    workdir = args.workdir or Path("/tmp/kubesage-task")
    (workdir / "parameters").mkdir(parents=True, exist_ok=True)
    for art in spec["output_artifacts"].values():
        # a fan-out step's outputs are folders (`<i>/` per item); a task's are files in a folder
        folder = Path(art["path"]) if "fan_out" in spec else Path(art["path"]).parent
        folder.mkdir(parents=True, exist_ok=True)
    try:
        for line in fetch_inputs(spec):
            print(f"kubesage shim: task '{args.task}': {line}", flush=True)
    except DataError as exc:
        print(f"kubesage shim: task '{args.task}': {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        executor_input = build_executor_input(spec, args.param, args.data_param, workdir, args.param_item)
    except (ValueError, FileNotFoundError) as exc:
        print(f"kubesage shim: task '{args.task}': {exc}", file=sys.stderr)
        return 2
    account = step_account()
    try:
        # use_secret_as_volume: one 0600 file per key, the task's own; the lines name files, never values
        for line in write_from_environment(os.environ, _secrets_client, account):
            print(f"kubesage shim: task '{args.task}': {line}", flush=True)
    except RunnerError as exc:
        print(f"kubesage shim: task '{args.task}': {exc}", file=sys.stderr)
        return exc.exit_code
    home = workdir / "home"
    if account is not None:
        hand_over([*_writable_folders(spec, workdir), home], account)
        grant_read(_readable_folders(spec, args.data_param))
    run_id_file = workdir / "mlflow-run-id"
    env = child_environment({**os.environ, **secret_values}, run_id_file, home if account else None, _DROP_IF_EMPTY)
    if "fan_out" in spec:
        return run_fan_out(spec, executor_input, workdir, env, account)
    command = resolve_command(spec, executor_input)
    user = f" as user {account.name!r}" if account else ""
    print(f"kubesage shim: running task '{args.task}' ({spec['display_name']}){user}", flush=True)
    result = run_child(command, env, account)
    if result.stop_signal is not None:
        run_id = close_stopped_run(run_id_file, env.get("MLFLOW_TRACKING_URI") or tracking_uri(), result.stop_signal)
        closed = f"; MLflow run {run_id} marked KILLED" if run_id else ""
        print(
            f"kubesage shim: task '{args.task}' stopped by {signal.Signals(result.stop_signal).name}{closed}",
            file=sys.stderr,
        )
        return result.exit_code
    if result.returncode != 0:
        print(f"kubesage shim: task '{args.task}' exited with {result.returncode}", file=sys.stderr)
        if args.continue_on_failure:
            return _record_instead_of_failing(spec, "failed", f"exited with {result.returncode}")
        return result.exit_code
    try:
        outputs = {**collect_outputs(spec, executor_input), "status": "succeeded"}
        write_new_file(Path(spec["outputs_file"]), json.dumps(outputs, indent=2, sort_keys=True))
    except RunnerError as exc:
        print(f"kubesage shim: task '{args.task}': {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
