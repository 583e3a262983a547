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
from kubesage.runners.sagemaker.compiler import compile_file
from kubesage.runners.sagemaker.config import SageMakerConfig

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sagemaker"


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


def _run(task: dict[str, Any], spec_dir: Path, workdir: Path, *extra: str) -> int:
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / f"{task['task']}.json").write_text(json.dumps(task))
    return shim.main(["--task", task["task"], "--spec-dir", str(spec_dir), "--workdir", str(workdir), *extra])


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
