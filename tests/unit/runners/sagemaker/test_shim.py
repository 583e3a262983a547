"""The in-container shim, run for real on this interpreter with SageMaker's /opt/ml remapped to tmp.

The toy pipeline is compiled, its task specs are taken from the compiled assets, and the tasks run
through `shim.main` in order: make-data (processing) -> fit-line (training, /opt/ml/model) ->
score-line (processing, reading the model as SageMaker delivers it: model.tar.gz).
"""

import importlib.util
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler

from kubesage.runners.sagemaker import shim
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest
from tests.paths import TESTS_DIR
from tests.unit.runners.sagemaker.ir_file import compile_file

GOLDEN = TESTS_DIR / "golden" / "sagemaker"


def _compiled_specs(tmp_path: Path) -> dict[str, dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("toy_threshold", GOLDEN / "toy_threshold.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ir = tmp_path / "toy.yaml"
    compiler.Compiler().compile(module.toy_threshold, str(ir))
    compiled = compile_file(ir, SageMakerConfig())
    root = str(tmp_path / "opt-ml")
    specs = {}
    for body in compiled.assets.values():
        text = body.decode().replace("/opt/ml", root)
        task = json.loads(text)
        specs[task["task"]] = task
    return specs


def _write_spec(task: dict[str, Any], spec_dir: Path) -> str:
    """Write the spec as the compiler would upload it; its sha256, as the definition pins it."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    body = spec_bytes(task)
    (spec_dir / f"{task['task']}.json").write_bytes(body)
    return spec_digest(body)


def _run(task: dict[str, Any], spec_dir: Path, workdir: Path, *extra: str) -> int:
    digest = _write_spec(task, spec_dir)
    argv = ["--task", task["task"], "--spec-dir", str(spec_dir), "--spec-sha256", digest, "--workdir", str(workdir)]
    return shim.main([*argv, *extra])


@pytest.fixture
def venv_python_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # The component command calls `python3`; make it this interpreter (kfp installed), as in the image.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.usefixtures("venv_python_first")
def test_toy_tasks_run_through_the_shim(tmp_path: Path) -> None:
    specs = _compiled_specs(tmp_path)
    ml = tmp_path / "opt-ml"
    proc_in, proc_out = ml / "processing" / "input", ml / "processing" / "output"

    assert (
        _run(
            specs["make-data"],
            proc_in / "kubesage-spec",
            tmp_path / "w1",
            "--param",
            "n_rows",
            "50",
            "--param",
            "noise",
            "0.05",
            "--param",
            "shuffle",
            "true",
        )
        == 0
    )
    data_file = proc_out / "data" / "data"
    rows = [tuple(map(float, line.split(","))) for line in data_file.read_text().splitlines()]
    assert len(rows) == 50

    # SageMaker downloads the processing output prefix into the training channel.
    channel = ml / "input" / "data" / "data"
    channel.mkdir(parents=True)
    (channel / "data").write_text(data_file.read_text())
    assert (
        _run(
            specs["fit-line"], ml / "input" / "data" / "kubesage-spec", tmp_path / "w2", "--param", "label", "toy-label"
        )
        == 0
    )
    line = json.loads((ml / "model" / "line.json").read_text())
    assert line["label"] == "toy-label"
    assert line["slope"] == pytest.approx(3.0, abs=0.2)

    # SageMaker tars /opt/ml/model into model.tar.gz; the shim must unpack it for KFP.
    model_in = proc_in / "model"
    model_in.mkdir(parents=True)
    with tarfile.open(model_in / "model.tar.gz", "w:gz") as tar:
        tar.add(ml / "model", arcname=".")
    (proc_in / "data").mkdir(parents=True)
    (proc_in / "data" / "data").write_text(data_file.read_text())
    assert _run(specs["score-line"], proc_in / "kubesage-spec", tmp_path / "w3") == 0
    outputs = json.loads((proc_out / "kubesage-outputs" / "outputs.json").read_text())

    mean_y = sum(y for y, _ in rows) / len(rows)
    ss_res = sum((y - (line["slope"] * x + line["intercept"])) ** 2 for y, x in rows)
    ss_tot = sum((y - mean_y) ** 2 for y, _ in rows)
    assert outputs["parameters"]["Output"] == pytest.approx(1 - ss_res / ss_tot, rel=1e-9)
    assert outputs["artifacts"]["metrics"]["r2"] == pytest.approx(outputs["parameters"]["Output"])


@pytest.mark.usefixtures("venv_python_first")
def test_failing_component_exit_code_propagates(tmp_path: Path) -> None:
    specs = _compiled_specs(tmp_path)
    # fit-line without its input data: the component raises, the shim must exit non-zero.
    assert _run(specs["fit-line"], tmp_path / "spec", tmp_path / "w", "--param", "label", "x") != 0


def test_bad_boolean_parameter_is_rejected_with_its_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = _compiled_specs(tmp_path)
    code = _run(
        specs["make-data"],
        tmp_path / "spec",
        tmp_path / "w",
        "--param",
        "n_rows",
        "5",
        "--param",
        "noise",
        "0.1",
        "--param",
        "shuffle",
        "maybe",
    )
    assert code == 2
    assert "task 'make-data'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "ptype", "expected"),
    [
        ("3", "NUMBER_INTEGER", 3),
        ("3.0", "NUMBER_INTEGER", 3),
        ("0.25", "NUMBER_DOUBLE", 0.25),
        ("True", "BOOLEAN", True),
        ("false", "BOOLEAN", False),
        ("a b", "STRING", "a b"),
        ('{"k": [1]}', "STRUCT", {"k": [1]}),
    ],
)
def test_cast_parameter(raw: str, ptype: str, expected: Any) -> None:
    assert shim.cast_parameter(raw, ptype) == expected


def test_collected_items_json_parameters_and_imported_object(tmp_path: Path) -> None:
    from kubesage.runners.sagemaker.shim import build_executor_input, collect_outputs

    imported = tmp_path / "in" / "data"
    imported.mkdir(parents=True)
    (imported / "rows.csv").write_text("a\nb\n")
    spec = {
        "component": {
            "inputDefinitions": {"parameters": {"xs": {"parameterType": "LIST"}, "w": {"parameterType": "STRUCT"}}},
            "outputDefinitions": {"parameters": {"out": {"parameterType": "LIST"}}},
        },
        "constants": {},
        "input_artifacts": {"data": {"dir": str(imported), "file": "", "packed": False, "type": {}}},
        "output_artifacts": {},
    }
    items = [["xs", "NUMBER_INTEGER", "3"], ["xs", "NUMBER_INTEGER", "-1"], ["xs", "NUMBER_INTEGER", "7"]]
    executor_input = build_executor_input(spec, {"w": '{"k": [1, "é"]}'}, {}, tmp_path / "work", items)
    values = executor_input["inputs"]["parameterValues"]
    assert values == {"xs": [3, -1, 7], "w": {"k": [1, "é"]}}
    # a runtime importer URI has no file name in the spec: the one object that arrived is the artifact
    assert executor_input["inputs"]["artifacts"]["data"]["artifacts"][0]["uri"] == str(imported / "rows.csv")
    # a LIST output reaches downstream steps (through JsonGet) as JSON text, which their shim decodes
    out_file = tmp_path / "work" / "executor_output.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps({"parameterValues": {"out": [1, "two"]}}))
    assert collect_outputs({"task": "t", **spec}, executor_input)["parameters"] == {"out": '[1, "two"]'}


def test_outputs_are_never_read_or_written_through_a_link_the_step_planted(tmp_path: Path) -> None:
    """The shim runs as root; the step (unprivileged) owns its output folders (issue 18 item 12)."""
    from kubesage.errors import RunnerError
    from kubesage.runners.sagemaker.shim import collect_outputs, read_step_file, write_new_file

    secret = tmp_path / "root-only"
    secret.write_text("the root-only secret")
    work = tmp_path / "work"
    work.mkdir()
    out_file = work / "executor_output.json"
    out_file.symlink_to(secret)
    spec = {"task": "t", "component": {}}
    executor_input = {"outputs": {"outputFile": str(out_file), "parameters": {}}}
    with pytest.raises(RunnerError, match="executor_output.json is or goes through a symbolic link"):
        collect_outputs(spec, executor_input)
    out_file.unlink()
    param = work / "param"
    param.symlink_to(secret)
    executor_input = {"outputs": {"outputFile": str(out_file), "parameters": {"p": {"outputFile": str(param)}}}}
    with pytest.raises(RunnerError, match="param is or goes through a symbolic link"):
        collect_outputs(spec, executor_input)
    linked_dir = tmp_path / "linked"
    linked_dir.symlink_to(tmp_path)  # a folder link: the file itself is regular
    with pytest.raises(RunnerError, match="goes through a symbolic link"):
        read_step_file(linked_dir / "root-only")
    os.mkfifo(work / "fifo")
    with pytest.raises(RunnerError, match="not a regular file"):
        read_step_file(work / "fifo")
    assert read_step_file(work / "absent") is None
    # outputs.json: a link planted where it will be written is replaced, its target untouched.
    planted = work / "outputs.json"
    planted.symlink_to(secret)
    write_new_file(planted, '{"ok": 1}')
    assert not planted.is_symlink()
    assert planted.read_text() == '{"ok": 1}'
    assert secret.read_text() == "the root-only secret"


# ---- the spec is pinned by its sha256 (issue 10, item 6) ---------------------------------------


@pytest.mark.usefixtures("venv_python_first")
def test_a_spec_changed_after_compile_is_refused_and_never_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = _compiled_specs(tmp_path)
    task = specs["make-data"]
    spec_dir = tmp_path / "spec"
    digest = _write_spec(task, spec_dir)
    # What an attacker with write access to the spec prefix would do: run their own code instead.
    marker = tmp_path / "pwned"
    swapped = {**task, "command": ["sh", "-c", f"touch {marker}"], "args": []}
    (spec_dir / "make-data.json").write_bytes(spec_bytes(swapped))
    argv = ["--task", "make-data", "--spec-dir", str(spec_dir), "--spec-sha256", digest]
    code = shim.main([*argv, "--workdir", str(tmp_path / "w"), "--param", "n_rows", "5"])
    assert code == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    assert f"pipeline definition pins {digest}" in err and "task 'make-data'" in err


def test_the_compiled_arguments_pin_each_uploaded_spec(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("toy_threshold", GOLDEN / "toy_threshold.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    compiler.Compiler().compile(module.toy_threshold, str(tmp_path / "toy.yaml"))
    compiled = compile_file(tmp_path / "toy.yaml", SageMakerConfig())
    pinned = {}
    text = compiled.definition_json()
    for body in compiled.assets.values():
        task = json.loads(body)["task"]
        pinned[task] = spec_digest(body)
        assert f'"{pinned[task]}"' in text
    assert len(pinned) == 4


def test_the_digest_flag_is_required(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        shim.main(["--task", "t", "--spec-dir", str(tmp_path)])
    assert exit_info.value.code == 2


# ---- argv: values starting with '-' (item 16) --------------------------------------------------


def test_parameter_values_that_look_like_options_are_kept() -> None:
    args = shim._parse(
        [
            "--task",
            "t",
            "--param",
            "lr",
            "-1e-05",
            "--spec-dir",
            "/s",
            "--param",
            "label",
            "--spec-dir",
            "--spec-sha256",
            "0" * 64,
            "--data-param",
            "input_data",
            "/in",
            "-s3://odd",
        ]
    )
    assert args.param == {"lr": "-1e-05", "label": "--spec-dir"}
    assert args.data_param == {"input_data": ("/in", "-s3://odd")}
    assert args.spec_dir == Path("/s") and args.spec_sha256 == "0" * 64


@pytest.mark.usefixtures("venv_python_first")
def test_a_negative_float_parameter_reaches_the_component(tmp_path: Path) -> None:
    specs = _compiled_specs(tmp_path)
    extra = ["--param", "n_rows", "20", "--param", "noise", "-1e-05", "--param", "shuffle", "false"]
    assert _run(specs["make-data"], tmp_path / "spec", tmp_path / "w", *extra) == 0
    rows = (tmp_path / "opt-ml" / "processing" / "output" / "data" / "data").read_text().splitlines()
    assert len(rows) == 20
    # noise -1e-05: every y is within 1e-4 of the line 3x + 1 (the component got the value, negative)
    assert all(abs(float(y) - (3.0 * float(x) + 1.0)) < 1e-4 for y, x in (r.split(",") for r in rows))


def test_a_value_option_cut_short_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        shim._parse(["--task", "t", "--spec-dir", "/s", "--spec-sha256", "0" * 64, "--param", "only-name"])
    assert exit_info.value.code == 2


# ---- S3Prefix inputs: the object the URI names, not its neighbours (item 16) -----------------


def test_a_data_uri_picks_its_object_not_keys_sharing_the_prefix(tmp_path: Path) -> None:
    # What SageMaker's S3Prefix download of s3://b/in/churn.txt leaves when churn.txt.bak exists too.
    (tmp_path / "churn.txt").write_text("real")
    (tmp_path / "churn.txt.bak").write_text("stale")
    assert shim.data_path(tmp_path, "s3://b/in/churn.txt") == tmp_path / "churn.txt"


def test_a_folder_uri_without_slash_excludes_sibling_prefixes(tmp_path: Path) -> None:
    # s3://b/data matches data/ and data2/: the task gets data/ only.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1")
    (tmp_path / "data2").mkdir()
    (tmp_path / "data2" / "b.csv").write_text("2")
    assert shim.data_path(tmp_path, "s3://b/data") == tmp_path / "data"
    assert shim.data_path(tmp_path, "s3://b/") == tmp_path


def test_sdk_local_mode_layout_of_a_single_object_still_resolves(tmp_path: Path) -> None:
    (tmp_path / "churn.txt").write_text("x")
    assert shim.data_path(tmp_path, "s3://b/in/abc/churn.txt") == tmp_path / "churn.txt"
    other = tmp_path / "other"
    other.mkdir()
    (other / "only.csv").write_text("x")
    assert shim.data_path(other, "s3://b/in/prefix") == other / "only.csv"


@pytest.mark.parametrize(
    ("value", "ptype", "expected"),
    [(1.0, "NUMBER_INTEGER", 1), (2.5, "NUMBER_INTEGER", 2.5), (3, "NUMBER_DOUBLE", 3.0), (True, "BOOLEAN", True)],
)
def test_constants_are_typed_as_declared(value: Any, ptype: str, expected: Any) -> None:
    """The IR holds numbers as doubles; an int input must get an int (an inlined sub-pipeline's
    constant arrived as 1.0 on sagemaker-local, and the component's int output then failed)."""
    from kubesage.runners.sagemaker.shim import typed_constant

    result = typed_constant(value, ptype)
    assert result == expected and type(result) is type(expected)
